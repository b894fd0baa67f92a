"""Nameko entrypoint of the customer context: thin, every method validates, authorises and
delegates."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from nameko.rpc import RpcProxy, rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, EventSourcedService, RpcSalesForce
from services.customer.application import CustomerApplication


class CustomerService(EventSourcedService):
    name = "customer"

    app: CustomerApplication = Application(CustomerApplication.from_settings)
    sales_rpc = RpcProxy("sales")

    def _call(
        self, operation: str, schema: type[Schema], payload: Any, handler: Any, command: bool = False
    ) -> dict:
        """Every handler of this context takes the sales force (the scope rule's answers) last."""
        sales_force = RpcSalesForce(self.sales_rpc)
        return self.request.run(
            operation, schema, payload, lambda data, meta: handler(data, meta, sales_force), command=command
        )

    def _command(self, operation: str, schema: type[Schema], payload: Any, handler: Any) -> dict:
        return self._call(operation, schema, payload, handler, command=True)

    @rpc
    def register_customer(self, payload: Any) -> dict:
        return self._command(
            "register_customer", schemas.RegisterCustomer, payload, self.app.register_customer
        )

    @rpc
    def reassign_customer(self, payload: Any) -> dict:
        return self._command(
            "reassign_customer", schemas.ReassignCustomer, payload, self.app.reassign_customer
        )

    @rpc
    def transfer_book(self, payload: Any) -> dict:
        return self._command("transfer_book", schemas.TransferBook, payload, self.app.transfer_book)

    @rpc
    def undo_book_transfer(self, payload: Any) -> dict:
        return self._command(
            "undo_book_transfer", schemas.UndoBookTransfer, payload, self.app.undo_book_transfer
        )

    @rpc
    def get_book_transfer(self, payload: Any) -> dict:
        return self._call("get_book_transfer", schemas.GetBookTransfer, payload, self.app.get_book_transfer)

    @rpc
    def list_customers(self, payload: Any) -> dict:
        return self._call("list_customers", schemas.ListCustomers, payload, self.app.list_customers)

    @rpc
    def update_profile(self, payload: Any) -> dict:
        return self._command("update_profile", schemas.UpdateProfile, payload, self.app.update_profile)

    @rpc
    def get_customer_history(self, payload: Any) -> dict:
        return self._call(
            "get_customer_history", schemas.GetCustomerHistory, payload, self.app.get_customer_history
        )

    @rpc
    def get_customer(self, payload: Any) -> dict:
        return self._call("get_customer", schemas.GetCustomer, payload, self.app.get_customer)

    @rpc
    def add_contact_point(self, payload: Any) -> dict:
        return self._command(
            "add_contact_point", schemas.AddContactPoint, payload, self.app.add_contact_point
        )

    @rpc
    def remove_contact_point(self, payload: Any) -> dict:
        return self._command(
            "remove_contact_point", schemas.RemoveContactPoint, payload, self.app.remove_contact_point
        )

    @rpc
    def set_contact_preferences(self, payload: Any) -> dict:
        return self._command(
            "set_contact_preferences",
            schemas.SetContactPreferences,
            payload,
            self.app.set_contact_preferences,
        )

    @rpc
    def record_consent(self, payload: Any) -> dict:
        return self._command("record_consent", schemas.RecordConsent, payload, self.app.record_consent)

    @rpc
    def get_consents(self, payload: Any) -> dict:
        return self._call("get_consents", schemas.GetConsents, payload, self.app.get_consents)

    @rpc
    def may_contact(self, payload: Any) -> dict:
        return self._call("may_contact", schemas.MayContact, payload, self.app.may_contact)

    @rpc
    def find_duplicates(self, payload: Any) -> dict:
        return self._call("find_duplicates", schemas.FindDuplicates, payload, self.app.find_duplicates)

    @rpc
    def merge_customers(self, payload: Any) -> dict:
        return self._command("merge_customers", schemas.MergeCustomers, payload, self.app.merge_customers)

    @rpc
    def erase_customer(self, payload: Any) -> dict:
        return self._command("erase_customer", schemas.EraseCustomer, payload, self.app.erase_customer)
