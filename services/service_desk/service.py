"""Nameko entrypoint of the service desk context: one line per RPC, and the SLA timer.

Every service desk process runs the timer (each second, and at once when it starts): it fires the
warnings, breaches and closings by themselves that are due, each once however many processes run
(``application.timers``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import eventlet
from marshmallow import Schema
from nameko.rpc import RpcProxy, rpc
from nameko.timer import timer

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, EventSourcedService, RpcCustomerDirectory
from crm_shared.rpc import Handler
from services.service_desk.application import ServiceDeskApplication

TIMER_SECONDS = float(os.environ.get("CRM_DESK_TIMER_SECONDS", "1.0"))
log = logging.getLogger("crm.service_desk")


class ServiceDeskService(EventSourcedService):
    name = "service_desk"

    app: ServiceDeskApplication = Application(ServiceDeskApplication.from_settings)
    customer_rpc = RpcProxy("customer")

    def _command(self, operation: str, schema: type[Schema], payload: Any, handler: Handler) -> dict:
        return self.request.run(operation, schema, payload, handler, command=True)

    def _query(self, operation: str, schema: type[Schema], payload: Any, handler: Handler) -> dict:
        return self.request.run(operation, schema, payload, handler)

    def _asking_customers(self, handler: Callable[..., Any]) -> Handler:
        directory = RpcCustomerDirectory(self.customer_rpc)
        return lambda data, meta: handler(data, meta, directory)

    @timer(interval=TIMER_SECONDS, eager=True)
    def fire_sla_clocks(self) -> None:
        try:
            fired = self.app.fire_due(between=lambda: eventlet.sleep(0))
        except Exception:  # logged and tried again on the next tick; the service stays up
            log.exception("the SLA timer failed; it runs again in %ss", TIMER_SECONDS)
            return
        if fired.total or fired.overtaken:
            log.info(
                "SLA timer: %d warnings, %d breaches, %d closed by themselves (%d taken by another process)",
                fired.warnings, fired.breaches, fired.auto_closed, fired.overtaken,
            )  # fmt: skip

    # Tickets ---------------------------------------------------------------------------------------

    @rpc
    def open_ticket(self, payload: Any) -> dict:
        return self._command(
            "open_ticket", schemas.OpenTicket, payload, self._asking_customers(self.app.open_ticket)
        )

    @rpc
    def open_complaint(self, payload: Any) -> dict:
        handler = self._asking_customers(self.app.open_complaint)
        return self._command("open_complaint", schemas.OpenComplaint, payload, handler)

    @rpc
    def assign_ticket(self, payload: Any) -> dict:
        return self._command("assign_ticket", schemas.AssignTicket, payload, self.app.assign_ticket)

    @rpc
    def add_ticket_note(self, payload: Any) -> dict:
        return self._command("add_ticket_note", schemas.AddTicketNote, payload, self.app.add_ticket_note)

    @rpc
    def request_customer_info(self, payload: Any) -> dict:
        handler = self.app.request_customer_info
        return self._command("request_customer_info", schemas.RequestCustomerInfo, payload, handler)

    @rpc
    def record_customer_reply(self, payload: Any) -> dict:
        handler = self.app.record_customer_reply
        return self._command("record_customer_reply", schemas.RecordCustomerReply, payload, handler)

    @rpc
    def escalate_ticket(self, payload: Any) -> dict:
        return self._command("escalate_ticket", schemas.EscalateTicket, payload, self.app.escalate_ticket)

    @rpc
    def resolve_ticket(self, payload: Any) -> dict:
        return self._command("resolve_ticket", schemas.ResolveTicket, payload, self.app.resolve_ticket)

    @rpc
    def confirm_resolution(self, payload: Any) -> dict:
        handler = self.app.confirm_resolution
        return self._command("confirm_resolution", schemas.ConfirmResolution, payload, handler)

    @rpc
    def reopen_ticket(self, payload: Any) -> dict:
        return self._command("reopen_ticket", schemas.ReopenTicket, payload, self.app.reopen_ticket)

    @rpc
    def close_ticket(self, payload: Any) -> dict:
        return self._command("close_ticket", schemas.CloseTicket, payload, self.app.close_ticket)

    @rpc
    def close_complaint(self, payload: Any) -> dict:
        return self._command("close_complaint", schemas.CloseComplaint, payload, self.app.close_complaint)

    @rpc
    def get_ticket(self, payload: Any) -> dict:
        return self._query(
            "get_ticket", schemas.GetTicket, payload, self._asking_customers(self.app.get_ticket)
        )

    @rpc
    def list_ticket_categories(self, payload: Any = None) -> dict:
        handler = self.app.list_ticket_categories
        return self._query("list_ticket_categories", schemas.ListTicketCategories, payload or {}, handler)

    # Queues and the desk's day -----------------------------------------------------------------------

    @rpc
    def get_queue(self, payload: Any) -> dict:
        return self._query("get_queue", schemas.GetQueue, payload, self.app.get_queue)

    @rpc
    def get_sla_board(self, payload: Any = None) -> dict:
        return self._query("get_sla_board", schemas.GetSlaBoard, payload or {}, self.app.get_sla_board)

    @rpc
    def get_desk_summary(self, payload: Any = None) -> dict:
        return self._query(
            "get_desk_summary", schemas.GetDeskSummary, payload or {}, self.app.get_desk_summary
        )

    # Call-backs, surveys, praise and suggestions -----------------------------------------------------

    @rpc
    def record_call_back(self, payload: Any) -> dict:
        return self._command("record_call_back", schemas.RecordCallBack, payload, self.app.record_call_back)

    @rpc
    def get_survey(self, payload: Any) -> dict:
        return self._query("get_survey", schemas.GetSurvey, payload, self.app.get_survey)

    @rpc
    def record_survey_response(self, payload: Any) -> dict:
        handler = self.app.record_survey_response
        return self._command("record_survey_response", schemas.RecordSurveyResponse, payload, handler)

    @rpc
    def record_praise(self, payload: Any) -> dict:
        handler = self._asking_customers(self.app.record_praise)
        return self._command("record_praise", schemas.RecordPraise, payload, handler)

    @rpc
    def record_suggestion(self, payload: Any) -> dict:
        handler = self._asking_customers(self.app.record_suggestion)
        return self._command("record_suggestion", schemas.RecordSuggestion, payload, handler)
