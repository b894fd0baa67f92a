"""Nameko entrypoint of the customer context: thin, every method validates, authorises and
delegates."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, CrmService
from services.customer.application import CustomerApplication


class CustomerService(CrmService):
    name = "customer"

    app: CustomerApplication = Application(CustomerApplication.from_settings)

    @rpc
    def register_customer(self, payload: Any) -> dict:
        return self.request.run(
            "register_customer", schemas.RegisterCustomer, payload, self.app.register_customer, command=True
        )

    @rpc
    def get_customer(self, payload: Any) -> dict:
        return self.request.run("get_customer", schemas.GetCustomer, payload, self.app.get_customer)
