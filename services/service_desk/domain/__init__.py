"""The service desk's domain. ``Complaint`` (``legacy``) stays importable here under its stored
topic, so the stores of earlier versions still read; new tickets are ``Ticket``s."""

from services.service_desk.domain.call_back import CallBack, SurveyRotation
from services.service_desk.domain.feedback import Feedback
from services.service_desk.domain.legacy import Complaint
from services.service_desk.domain.rules import DeskRules
from services.service_desk.domain.sla import Due, SlaClock, SlaState
from services.service_desk.domain.survey import SurveyBank
from services.service_desk.domain.ticket import Ticket, TicketState

__all__ = [
    "CallBack",
    "Complaint",
    "DeskRules",
    "Due",
    "Feedback",
    "SlaClock",
    "SlaState",
    "SurveyBank",
    "SurveyRotation",
    "Ticket",
    "TicketState",
]
