"""Nameko entrypoint of the service desk context."""

from __future__ import annotations

from typing import Any

from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, CrmService, RpcCustomerDirectory
from services.service_desk.application import ServiceDeskApplication


class ServiceDeskService(CrmService):
    name = "service_desk"

    app: ServiceDeskApplication = Application(ServiceDeskApplication.from_settings)
    customer_rpc = RpcProxy("customer")

    @rpc
    def open_complaint(self, payload: Any) -> dict:
        directory = RpcCustomerDirectory(self.customer_rpc)
        return self.request.run(
            "open_complaint",
            schemas.OpenComplaint,
            payload,
            lambda data, meta: self.app.open_complaint(data, meta, directory),
            command=True,
        )

    @rpc
    def close_complaint(self, payload: Any) -> dict:
        return self.request.run(
            "close_complaint", schemas.CloseComplaint, payload, self.app.close_complaint, command=True
        )

    @rpc
    def get_ticket(self, payload: Any) -> dict:
        return self.request.run("get_ticket", schemas.GetTicket, payload, self.app.get_ticket)
