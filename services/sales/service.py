"""Nameko entrypoint of the sales context.

Sales learns that a customer exists by asking the customer service over RPC at the moment of the
sale, as the original caller. The customer context is the only source of truth for who exists and who
owns them, and a policy sold to a customer registered a second earlier must not be refused by a
replica that has not caught up."""

from __future__ import annotations

from typing import Any

from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, CrmService, RpcCustomerDirectory
from services.sales.application import SalesApplication


class SalesService(CrmService):
    name = "sales"

    app: SalesApplication = Application(SalesApplication.from_settings)
    customer_rpc = RpcProxy("customer")

    @rpc
    def sell_policy(self, payload: Any) -> dict:
        directory = RpcCustomerDirectory(self.customer_rpc)
        return self.request.run(
            "sell_policy",
            schemas.SellPolicy,
            payload,
            lambda data, meta: self.app.sell_policy(data, meta, directory),
            command=True,
        )

    @rpc
    def get_policy(self, payload: Any) -> dict:
        return self.request.run("get_policy", schemas.GetPolicy, payload, self.app.get_policy)
