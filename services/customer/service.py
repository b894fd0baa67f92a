"""Nameko entrypoint of the customer context: thin, every method validates, authorises and
delegates."""

from __future__ import annotations

from typing import Any

from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, CrmService, RpcSalesForce
from services.customer.application import CustomerApplication


class CustomerService(CrmService):
    name = "customer"

    app: CustomerApplication = Application(CustomerApplication.from_settings)
    sales_rpc = RpcProxy("sales")

    @rpc
    def register_customer(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "register_customer",
            schemas.RegisterCustomer,
            payload,
            lambda data, meta: self.app.register_customer(data, meta, sales_force),
            command=True,
        )

    @rpc
    def reassign_customer(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "reassign_customer",
            schemas.ReassignCustomer,
            payload,
            lambda data, meta: self.app.reassign_customer(data, meta, sales_force),
            command=True,
        )

    @rpc
    def transfer_book(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "transfer_book",
            schemas.TransferBook,
            payload,
            lambda data, meta: self.app.transfer_book(data, meta, sales_force),
            command=True,
        )

    @rpc
    def undo_book_transfer(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "undo_book_transfer",
            schemas.UndoBookTransfer,
            payload,
            lambda data, meta: self.app.undo_book_transfer(data, meta, sales_force),
            command=True,
        )

    @rpc
    def get_book_transfer(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "get_book_transfer",
            schemas.GetBookTransfer,
            payload,
            lambda data, meta: self.app.get_book_transfer(data, meta, sales_force),
        )

    @rpc
    def list_customers(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "list_customers",
            schemas.ListCustomers,
            payload,
            lambda data, meta: self.app.list_customers(data, meta, sales_force),
        )

    @rpc
    def update_profile(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "update_profile",
            schemas.UpdateProfile,
            payload,
            lambda data, meta: self.app.update_profile(data, meta, sales_force),
            command=True,
        )

    @rpc
    def get_customer_history(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "get_customer_history",
            schemas.GetCustomerHistory,
            payload,
            lambda data, meta: self.app.get_customer_history(data, meta, sales_force),
        )

    @rpc
    def get_customer(self, payload: Any) -> dict:
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            "get_customer",
            schemas.GetCustomer,
            payload,
            lambda data, meta: self.app.get_customer(data, meta, sales_force),
        )
