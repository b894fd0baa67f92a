"""Nameko entrypoint of the customer context: thin, every method validates, authorises and
delegates."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, Request
from crm_shared.rpc import RequestContext
from services.customer.application import CustomerApplication


class CustomerService:
    name = "customer"

    app: CustomerApplication = Application(CustomerApplication.from_settings)
    request: RequestContext = Request()

    @rpc
    def ping(self, payload: Any = None) -> dict:
        return self.request.run("ping", schemas.Ping, payload or {}, lambda _d, _m: "pong")

    @rpc
    def register_customer(self, payload: Any) -> dict:
        return self.request.run(
            "register_customer", schemas.RegisterCustomer, payload, self.app.register_customer, command=True
        )

    @rpc
    def get_customer(self, payload: Any) -> dict:
        return self.request.run("get_customer", schemas.GetCustomer, payload, self.app.get_customer)
