"""What each page and its JSON twin show, fetched from the services as the signed-in person: the
services decide what that person may see (the same rules as every RPC caller), the dashboard only
asks and arranges. An operators' view also requires an operator or an administrator here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from crm_shared.errors import PermissionDenied
from services.dashboard.ops import DeadLetters, Heartbeats, ManagementApi
from services.dashboard.sessions import Session

# A manager's first page shows the day of this many of their teams (the plans page shows any).
MANAGERS_TEAMS_SHOWN = 5
log = logging.getLogger("crm.dashboard.actions")
Call = Callable[[str, str, dict[str, Any], str], dict[str, Any]]


class ServiceError(Exception):
    """A service's refusal, passed on as it was given (code, message, fields)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", "refused"))
        self.error = error

    @property
    def code(self) -> str:
        return str(self.error.get("code", "internal_error"))


class Views:
    def __init__(
        self,
        call: Call,
        heartbeats: Heartbeats | None,
        management: ManagementApi | None,
        dead_letters: DeadLetters | None,
    ) -> None:
        self._call = call
        self.heartbeats = heartbeats
        self.management = management
        self.dead_letters = dead_letters

    def ask(self, session: Session, service: str, method: str, payload: dict[str, Any]) -> Any:
        reply = self._call(service, method, payload, session.access_token)
        if not reply.get("ok"):
            raise ServiceError(reply.get("error") or {"code": "internal_error", "message": "no answer"})
        return reply["result"]

    def audited(self, session: Session, action: str, target: str, outcome: str) -> None:
        """A page's action on the platform, recorded by identity under the person's own name for the
        audit log, as an RPC's event is. The action is done by then: a record that fails is logged
        in full (the record of last resort) and does not undo it."""
        try:
            self.ask(
                session,
                "identity",
                "record_operator_action",
                {"action": action, "target": target, "outcome": outcome},
            )
        except Exception:
            log.exception(
                "%s of %s by %s (%s) is done but not in the audit log",
                action,
                target,
                session.user_id,
                outcome,
            )

    @staticmethod
    def operators_only(session: Session) -> None:
        if not session.sees_everything:
            raise PermissionDenied("the operators' pages are for operators and administrators")

    # Everybody's first page -----------------------------------------------------------------

    def summary(self, session: Session) -> dict[str, Any]:
        """The day's work at a glance, for whoever is signed in: an agent's own day, a manager's
        teams' days, the desk's queue and its SLA clocks, the system's state for operators."""
        summary: dict[str, Any] = {"user": me(session), "date": date.today().isoformat(), "cards": []}
        cards = summary["cards"]
        if session.role == "agent":
            plan = self.ask(session, "sales", "get_daily_plan", {})
            cards.append({"title": "Your day", "kind": "plan", "data": plan})
        if session.role == "manager":
            managed = self.ask(session, "sales", "scope_of", {"manager_user_id": session.user_id})
            for team_id in managed["managed_team_ids"][:MANAGERS_TEAMS_SHOWN]:
                day = self.ask(session, "sales", "get_team_day", {"team_id": team_id})
                cards.append({"title": f"Team {team_id}'s day", "kind": "team_day", "data": day})
            teams = self.ask(session, "analytics", "get_segment_counts", {"scheme": "value_tier"})
            cards.append({"title": "Your teams' customers by value", "kind": "segments", "data": teams})
        if session.role in ("service_desk", "operator", "admin"):
            board = self.ask(session, "service_desk", "get_sla_board", {})
            cards.append({"title": "The service desk's SLA clocks", "kind": "sla", "data": board})
        if session.sees_everything:
            cards.append({"title": "The system", "kind": "health", "data": self.health(session)})
        return summary

    # Operators -------------------------------------------------------------------------------

    def health(self, session: Session) -> dict[str, Any]:
        self.operators_only(session)
        processes = self.heartbeats.processes() if self.heartbeats else []
        broker: dict[str, Any]
        try:
            broker = {"up": True, **(self.management.overview() if self.management else {})}
        except Exception as e:
            broker = {"up": False, "problem": str(e)}
        stores = []
        for service in ("identity", "customer", "sales", "service_desk", "analytics"):
            began = time.monotonic()
            try:
                self.ask(session, service, "ping", {})
                stores.append(
                    {"service": service, "up": True, "ms": round((time.monotonic() - began) * 1000, 1)}
                )
            except Exception as e:  # a service down is a row, not an error
                stores.append({"service": service, "up": False, "problem": str(e)})
        read_models: dict[str, Any]
        try:
            projections = self.ask(session, "analytics", "get_projections", {})["projections"]
            read_models = {"up": True, "projections": len(projections)}
        except Exception as e:
            read_models = {"up": False, "problem": str(e)}
        return {
            "processes": processes,
            "all_up": bool(processes) and all(p["up"] for p in processes),
            "broker": broker,
            "services": stores,
            "read_models": read_models,
        }

    def queues(self, session: Session) -> dict[str, Any]:
        self.operators_only(session)
        if self.management is None:
            return {"queues": [], "problem": "no management API configured (CRM_RABBITMQ_API_URL)"}
        return {"queues": self.management.queues()}

    def projections(self, session: Session) -> dict[str, Any]:
        self.operators_only(session)
        return self.ask(session, "analytics", "get_projections", {})

    def rebuild(self, session: Session, model: str) -> dict[str, Any]:
        self.operators_only(session)
        job = self.ask(session, "analytics", "start_rebuild", {"model": model})
        log.info("rebuild of %s asked for by %s (job %s)", model, session.user_id, job.get("job_id"))
        self.audited(session, "rebuild_started", model, f"job {job.get('job_id')}")
        return job

    def dead_letter_list(self, session: Session, queue: str | None, limit: int) -> dict[str, Any]:
        self.operators_only(session)
        if self.dead_letters is None:
            return {"queues": [], "queue": None, "dead_letters": []}
        chosen = queue or self.dead_letters.queues[0]
        if not self.dead_letters.known(chosen):
            raise unknown_queue(chosen)
        return {
            "queues": self.dead_letters.queues,
            "queue": chosen,
            "dead_letters": self.dead_letters.list(chosen, limit),
        }

    def dead_letter_act(self, session: Session, action: str, queue: str, message_id: str) -> dict[str, Any]:
        self.operators_only(session)
        if self.dead_letters is None or not self.dead_letters.known(queue):
            raise unknown_queue(queue)
        done = (self.dead_letters.requeue if action == "requeue" else self.dead_letters.discard)(
            queue, message_id
        )
        log.info("dead letter %s %s from %s by %s: %d", message_id, action, queue, session.user_id, done)
        if done:
            # Who moved or dropped which message (the broker keeps no record of it).
            recorded = "dead_letter_requeued" if action == "requeue" else "dead_letter_discarded"
            self.audited(session, recorded, f"{queue} {message_id}", f"{done} message(s)")
        else:
            raise ServiceError(
                {
                    "code": "not_found",
                    "message": f"no dead letter {message_id} in {queue} (taken meanwhile?)",
                    "fields": [
                        {"field": "message_id", "rule": "unknown_message", "message": "not in the queue"}
                    ],
                }
            )
        return {"queue": queue, "message_id": message_id, action: done}


def unknown_queue(queue: str) -> ServiceError:
    return ServiceError(
        {
            "code": "validation_failed",
            "message": f"no consumer queue {queue}",
            "fields": [{"field": "queue", "rule": "one_of", "message": "a queue of the CRM's consumers"}],
        }
    )


def me(session: Session) -> dict[str, Any]:
    return {
        "user_id": session.user_id,
        "role": session.role,
        "agent_id": session.agent_id,
        "display_name": session.display_name,
    }
