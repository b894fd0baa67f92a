"""Customer context command and query handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from eventsourcing.application import AggregateNotFoundError

from contracts.rpc import CONTACT_VALUE_FIELDS
from contracts.validators import normalise_national_id
from crm_shared.access import TeamScope, may_act_on, require_customer_access
from crm_shared.auth import Role
from crm_shared.commands import Decision, command
from crm_shared.crypto import blind_index
from crm_shared.domain import CommandMeta, json_ready
from crm_shared.errors import (
    CustomerMerged,
    DuplicateCustomer,
    InvalidState,
    PermissionDenied,
    ValidationFailed,
)
from services.customer.contacts import NO_PREFERENCES
from services.customer.domain import PROFILE_FIELDS, Customer, NationalIdClaim
from services.customer.handover import Handover
from services.customer.matching import duplicate_candidates, match_values
from services.customer.owners import OWNERS


def change_history(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The record's changes from its events: each field's value before and after."""
    current: dict[str, Any] = {}
    points: dict[str, Any] = {}
    preferences: dict[str, Any] = dict(NO_PREFERENCES)
    consents: dict[str, str] = {}
    changes: list[dict[str, Any]] = []
    for event in events:
        when, who = event.timestamp.isoformat(), event.meta["actor"]
        if isinstance(event, Customer.Registered):
            current = {
                name: json_ready(getattr(event, name)) for name in (*PROFILE_FIELDS, "owning_agent_id")
            }
            changes.append({"what": "registered", "changes": [], "who": who, "when": when, "why": None})
        elif isinstance(event, Customer.ProfileUpdated):
            changed = event.changes or {}  # None once the customer is erased
            fields = [{"field": n, "from": current.get(n), "to": v} for n, v in sorted(changed.items())]
            current.update(changed)
            changes.append(
                {"what": "profile_updated", "changes": fields, "who": who, "when": when, "why": event.reason}
            )
        elif isinstance(event, Customer.OwnerChanged):
            fields = [{"field": "owning_agent_id", "from": event.previous_agent_id, "to": event.new_agent_id}]
            current["owning_agent_id"] = event.new_agent_id
            changes.append(
                {"what": "owner_changed", "changes": fields, "who": who, "when": when, "why": event.reason}
            )
        elif isinstance(event, Customer.ContactPointAdded):
            points[event.contact_point_id] = event.value
            field = f"contact_points.{event.contact_point_id}"
            fields = [
                {
                    "field": field,
                    "from": None,
                    "to": {"kind": event.kind, "label": event.label, "value": event.value},
                }
            ]
            changes.append(
                {"what": "contact_point_added", "changes": fields, "who": who, "when": when, "why": None}
            )
        elif isinstance(event, Customer.ContactPointRemoved):
            field = f"contact_points.{event.contact_point_id}"
            fields = [{"field": field, "from": points.pop(event.contact_point_id, None), "to": None}]
            changes.append(
                {
                    "what": "contact_point_removed",
                    "changes": fields,
                    "who": who,
                    "when": when,
                    "why": event.reason,
                }
            )
        elif isinstance(event, Customer.ContactPreferencesSet):
            after = {
                "preferred_channel": event.preferred_channel,
                "best_time_to_call": event.best_time_to_call,
                "do_not_call": event.do_not_call,
            }
            fields = [{"field": n, "from": preferences[n], "to": after[n]} for n in event.changed]
            preferences = after
            changes.append(
                {
                    "what": "contact_preferences_set",
                    "changes": fields,
                    "who": who,
                    "when": when,
                    "why": event.reason,
                }
            )
        elif isinstance(event, Customer.ConsentRecorded):
            field = f"consents.{event.channel}.{event.purpose}"
            fields = [{"field": field, "from": consents.get(field), "to": event.status}]
            consents[field] = event.status
            source = f"{event.source['kind']} {event.source['reference']}, given {event.given_at}"
            changes.append(
                {"what": "consent_recorded", "changes": fields, "who": who, "when": when, "why": source}
            )
        elif isinstance(event, Customer.Merged):
            fields = [{"field": "merged_into", "from": None, "to": event.survivor_id}]
            changes.append(
                {"what": "merged", "changes": fields, "who": who, "when": when, "why": event.reason}
            )
        elif isinstance(event, Customer.DuplicateMerged):
            fields = [{"field": "merged_from", "from": None, "to": event.duplicate_id}]
            changes.append(
                {"what": "duplicate_merged", "changes": fields, "who": who, "when": when, "why": event.reason}
            )
        elif isinstance(event, Customer.Erased):
            why = f"{event.reason} (request {event.request_reference})"
            changes.append({"what": "erased", "changes": [], "who": who, "when": when, "why": why})
    return changes


MAX_MERGE_HOPS = 10
# Who keeps a customer's record: its owner, the owner's manager, the service desk, operators, admins.
RECORD_KEEPERS = (Role.AGENT, Role.MANAGER, Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
# The consent a campaign channel rests on: an agent's call or visit is arranged by phone.
CONSENT_CHANNEL_OF = {"agent_call": "phone", "visit": "phone", "sms": "sms", "email": "email", "post": "post"}


class SalesForce(TeamScope, Protocol):
    """What the customer context asks the sales force: the scope rule's questions, and whether an
    owner may own customers now."""

    def owner_status(self, owner_id: str) -> str | None:
        """``active`` (an active agent, or the pool of an existing team), ``departed``, or None
        for an owner the sales force does not know."""
        ...


def require_active_owner(sales_force: SalesForce, owner_id: str, field: str) -> None:
    status = sales_force.owner_status(owner_id)
    if status is None:
        raise ValidationFailed.single(field, "unknown_agent", f"the sales force has no agent {owner_id}")
    if status != "active":
        raise ValidationFailed.single(
            field, "agent_departed", f"agent {owner_id} has departed: choose an active agent"
        )


class CustomerApplication(Handover):
    CONTEXT = "customer"

    def customer_in_scope(
        self,
        customer_id: str,
        meta: CommandMeta,
        scope: TeamScope,
        *,
        also: tuple[Role, ...] = (),
        merged_too: bool = False,
        field: str = "customer_id",
    ) -> Customer:
        """The customer, if the caller may act on it; otherwise the same refusal as for a customer
        that does not exist. A merged duplicate is the survivor's: who may act on the survivor may
        learn where it went (``customer_merged``), or, with ``merged_too``, read it."""
        customer = self.find(Customer, customer_id)
        survivor = self.survivor_of(customer) if customer is not None else None
        owner = survivor.owning_agent_id if survivor else None
        require_customer_access(meta.actor, customer_id, owner, scope, also=also, field=field)
        assert customer is not None and survivor is not None
        if customer is not survivor and not merged_too:
            raise CustomerMerged.into(customer_id, survivor.id)
        return customer

    def survivor_of(self, customer: Customer) -> Customer:
        """The record a merged duplicate lives on in (itself if it was not merged)."""
        for _ in range(MAX_MERGE_HOPS):
            if customer.merged_into is None:
                return customer
            found = self.find(Customer, customer.merged_into)
            if found is None:
                return customer
            customer = found
        return customer

    @command
    def register_customer(self, data: dict[str, Any], meta: CommandMeta, sales_force: SalesForce) -> Decision:
        caller = meta.actor
        caller.require_role(Role.AGENT, Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        owner = data["owning_agent_id"]
        if not may_act_on(caller, owner, sales_force):
            raise PermissionDenied(
                f"you may register customers only for yourself (agents) or for the agents of your "
                f"teams (managers), not for '{owner}'"
            )
        require_active_owner(sales_force, owner, "owning_agent_id")
        national_id = normalise_national_id(data["national_id"])
        digest = self.national_id_digest(national_id)

        def new_customer() -> Customer:
            return Customer.register(
                full_name=data["full_name"],
                national_id=national_id,
                mobile_phone=data["mobile_phone"],
                email=data["email"],
                date_of_birth=data["date_of_birth"],
                address=data["address"],
                owning_agent_id=data["owning_agent_id"],
                meta=meta,
            )

        customer = new_customer()
        # The claim's id is derived from the national id, so a person registered before (or by a
        # registration racing this one) collides with it in the same atomic append: no read first.
        claim = NationalIdClaim.claim(digest, str(customer.id), meta)
        # Advisory: the clerk is told, the registration goes ahead (the index may lag the store by
        # the background process's poll).
        values = match_values(customer.full_name, customer.mobile_phone, customer.date_of_birth)
        answer = {
            "customer_id": str(customer.id),
            **self._duplicates(values, meta, sales_force, str(customer.id)),
        }
        return Decision(
            answer,
            (customer, claim),
            explain_conflict=lambda: self._explain_claimed(digest, meta, sales_force, answer, new_customer),
        )

    def national_id_digest(self, national_id: str) -> str:
        return blind_index(self.data_key, f"national_id:{national_id}")

    def _duplicates(
        self, values: dict[str, str], meta: CommandMeta, scope: TeamScope, customer_id: str
    ) -> dict[str, Any]:
        """Possible duplicates the caller may see. Those outside their scope are not even counted:
        a count would tell anyone who registers whether a phone number is a customer's anywhere
        (the service desk, which sees every customer, finds them)."""
        rows = self.matches.matches(values, OWNERS)
        visible = [r for r in rows if may_act_on(meta.actor, r["owner_id"], scope, also=(Role.SERVICE_DESK,))]
        owners = {str(r["customer_id"]): r["owner_id"] for r in visible}
        found = duplicate_candidates(visible, exclude=customer_id)
        return {"possible_duplicates": [{**f, "owning_agent_id": owners[f["customer_id"]]} for f in found]}

    def _explain_claimed(
        self,
        digest: str,
        meta: CommandMeta,
        scope: TeamScope,
        answer: dict[str, Any],
        new_customer: Callable[[], Customer],
    ) -> Decision | None:
        """Why the national id's claim collided: the person is a customer already (refused), or was
        one and was erased (the claim passes to the new registration, which is stored instead)."""
        try:
            claim: NationalIdClaim = self.repository.get(NationalIdClaim.id_for(digest))
        except AggregateNotFoundError:
            return None
        claimed = self.find(Customer, claim.customer_id)
        existing = self.survivor_of(claimed) if claimed is not None else None
        if existing is not None and existing.erased_at is not None:
            customer = new_customer()
            claim.reclaim(str(customer.id), meta)
            return Decision(answer, (customer, claim))
        in_scope = existing is not None and may_act_on(meta.actor, existing.owning_agent_id, scope)
        if existing is not None and in_scope:
            raise DuplicateCustomer(
                f"a customer with this national id already exists: {existing.id}",
                details={"existing_customer_id": str(existing.id)},
            )
        # Someone else's customer: that the person is a customer already cannot be hidden (a
        # national id is registered once), but which customer it is, and who owns it, is.
        raise DuplicateCustomer(
            "a customer with this national id already exists, outside your book; ask your manager "
            "or the service desk to reassign the customer to you"
        )

    @command
    def reassign_customer(self, data: dict[str, Any], meta: CommandMeta, sales_force: SalesForce) -> Decision:
        caller = meta.actor
        caller.require_role(Role.MANAGER, Role.OPERATOR, Role.ADMIN)
        customer_id = str(data["customer_id"])
        customer = self.customer_in_scope(customer_id, meta, sales_force)
        new_owner = data["new_agent_id"]
        if not may_act_on(caller, new_owner, sales_force):
            raise PermissionDenied(f"a manager reassigns within their teams only; {new_owner} is not in them")
        require_active_owner(sales_force, new_owner, "new_agent_id")
        customer.change_owner(new_owner, data["reason"], meta)
        return Decision(
            {"customer_id": customer_id, "owning_agent_id": new_owner, "version": customer.version},
            (customer,),
        )

    @command
    def update_profile(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        customer = self.record_to_keep(data, meta, scope)
        changes = customer.update_profile(data, data["reason"], meta)
        answer = {"customer_id": str(customer.id), "changed": sorted(changes), "version": customer.version}
        return Decision(answer, (customer,) if changes else ())

    @command
    def add_contact_point(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        customer = self.record_to_keep(data, meta, scope)
        kind = data["kind"]
        point_id = customer.add_contact_point(
            kind, data["label"], data[CONTACT_VALUE_FIELDS[kind]], data["preferred"], meta
        )
        answer = {"customer_id": str(customer.id), "contact_point_id": point_id, "version": customer.version}
        return Decision(answer, (customer,))

    @command
    def remove_contact_point(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        customer = self.record_to_keep(data, meta, scope)
        customer.remove_contact_point(str(data["contact_point_id"]), data["reason"], meta)
        return Decision({"customer_id": str(customer.id), "version": customer.version}, (customer,))

    @command
    def set_contact_preferences(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        customer = self.record_to_keep(data, meta, scope)
        changed = customer.set_contact_preferences(data, data["reason"], meta)
        answer = {
            "customer_id": str(customer.id),
            "changed": changed,
            "contact_preferences": customer.contact_preferences,
            "version": customer.version,
        }
        return Decision(answer, (customer,) if changed else ())

    @command
    def record_consent(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        customer = self.record_to_keep(data, meta, scope)
        now = self.clock()
        customer.record_consent(
            data["channel"],
            data["purpose"],
            data["status"],
            data["source"],
            data["given_at"] or now,
            now,
            meta,
        )
        state = customer.current_consents()[(data["channel"], data["purpose"])]
        answer = {"customer_id": str(customer.id), "consent": state.as_dict(), "version": customer.version}
        return Decision(answer, (customer,))

    @command
    def withdraw_consent_on_opt_out(self, data: dict[str, Any], meta: CommandMeta) -> Decision:
        """``data``: a ``sales.campaign_response_recorded`` envelope of an opt-out. The customer's
        marketing consent on the channel they opted out of is withdrawn as of their answer, so that
        no later campaign reaches them there: on the survivor's record if theirs was merged into
        another since; an erased record is left as it is."""
        payload = data["payload"]
        found = self.find(Customer, str(payload["customer_id"]))
        # A duplicate merged since: the survivor holds the person's consents now.
        customer = self.survivor_of(found) if found is not None else None
        channel = CONSENT_CHANNEL_OF[payload["channel"]]
        if customer is None or customer.erased_at is not None or customer.merged_into is not None:
            return Decision({"customer_id": str(payload["customer_id"]), "withdrawn": False})
        now = self.clock()
        answered = min(datetime.fromisoformat(data["occurred_at"]), now)
        reference = f"campaign {payload['campaign_id']}" + (
            f", message {payload['message_id']}" if payload.get("message_id") else ""
        )
        source = {"kind": "campaign", "reference": reference}
        customer.record_consent(channel, "marketing", "withdrawn", source, answered, now, meta)
        return Decision({"customer_id": str(customer.id), "withdrawn": True, "channel": channel}, (customer,))

    def get_consents(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        """The consent in force for every channel and purpose, and every consent recorded."""
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        return {
            "customer_id": str(customer.id),
            "current": [state.as_dict() for state in customer.current_consents().values()],
            "history": customer.consents,
        }

    def may_contact(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        """Whether the customer may be contacted on a channel for a purpose now, and why."""
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        permission = customer.may_contact(data["channel"], data["purpose"], self.duplicates_of(customer))
        return {
            "customer_id": str(customer.id),
            "channel": data["channel"],
            "purpose": data["purpose"],
            **permission.as_dict(),
        }

    def record_to_keep(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Customer:
        """The customer whose record the caller changes: their own (agents), their teams' (managers),
        any (the service desk, operators, admins); not one merged into another, nor an erased one."""
        meta.actor.require_role(*RECORD_KEEPERS)
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        customer.require_open()
        return customer

    # Duplicates and merges ---------------------------------------------------------------------

    def find_duplicates(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        """Customers who may be the same person as this one: same mobile phone, or same name and
        date of birth once normalised."""
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        self.catch_up_indexes()
        values = match_values(customer.full_name, customer.mobile_phone, customer.date_of_birth)
        return {"customer_id": str(customer.id), **self._duplicates(values, meta, scope, str(customer.id))}

    @command
    def merge_customers(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        """The duplicate's record becomes the survivor's: it refuses commands from now on (naming the
        survivor), and the survivor's 360 view holds the policies, tickets and history of both."""
        meta.actor.require_role(Role.MANAGER, Role.SERVICE_DESK, Role.OPERATOR, Role.ADMIN)
        survivor = self.customer_in_scope(
            str(data["survivor_id"]),
            meta,
            scope,
            also=(Role.SERVICE_DESK,),
            merged_too=True,
            field="survivor_id",
        )
        duplicate = self.customer_in_scope(
            str(data["duplicate_id"]),
            meta,
            scope,
            also=(Role.SERVICE_DESK,),
            merged_too=True,
            field="duplicate_id",
        )
        duplicate.merge_into(survivor, data["reason"], meta)
        answer = {
            "survivor_id": str(survivor.id),
            "duplicate_id": str(duplicate.id),
            "version": survivor.version,
        }
        return Decision(answer, (duplicate, survivor))

    # Erasure -----------------------------------------------------------------------------------

    @command
    def erase_customer(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> Decision:
        """Erase the person's personal data: the keys of the customer (and of the duplicates merged
        into it) are shredded first, so that from then on no stored event of theirs can be read,
        and ``customer.erased`` tells every read model and consumer to forget them. Policies,
        premiums and tickets stay (statutory records)."""
        meta.actor.require_role(Role.OPERATOR, Role.ADMIN)
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, merged_too=True)
        records = [customer, *self.duplicates_of(customer)]
        erasing = [r for r in records if r.erased_at is None]
        if not erasing:
            raise InvalidState(f"customer {customer.id} was erased already, on {customer.erased_at}")
        for record in erasing:
            record.erase(data["reason"], data["request_reference"], meta)
        answer = {
            "customer_id": str(customer.id),
            "erased": sorted(str(r.id) for r in erasing),
            "erased_at": customer.erased_at,
        }
        # The keys go once the erasure is recorded. Should this process die in between, the owner
        # index shreds them when it takes the customer.erased event (within a poll of crm-handover,
        # or at the next listing): a recorded erasure always ends with the keys gone.
        subjects = [str(r.id) for r in erasing]
        return Decision(answer, tuple(erasing), then=lambda: self.subject_keys.shred(subjects))

    def duplicates_of(self, customer: Customer) -> list[Customer]:
        """The records merged into ``customer``."""
        return [d for d in (self.find(Customer, i) for i in customer.merged_from) if d is not None]

    def get_customer_history(
        self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope
    ) -> dict[str, Any]:
        """Every change of the record: what, from, to, who, when and why, oldest first (also of a
        record merged into another: its history is part of the survivor's)."""
        customer = self.customer_in_scope(
            str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,), merged_too=True
        )
        return {
            "customer_id": str(customer.id),
            "changes": change_history(self.repository.event_store.get(customer.id)),
        }

    def get_customer(self, data: dict[str, Any], meta: CommandMeta, scope: TeamScope) -> dict[str, Any]:
        customer = self.customer_in_scope(str(data["customer_id"]), meta, scope, also=(Role.SERVICE_DESK,))
        return {
            "customer_id": str(customer.id),
            "full_name": customer.full_name,
            "national_id": customer.national_id,
            "mobile_phone": customer.mobile_phone,
            "email": customer.email,
            "date_of_birth": customer.date_of_birth.isoformat() if customer.date_of_birth else None,
            "address": customer.address,
            "owning_agent_id": customer.owning_agent_id,
            "ownership_history": customer.ownership,
            "contact_points": [
                {**point, "preferred": customer.preferred_contact_points.get(point["kind"]) == point_id}
                for point_id, point in customer.contact_points.items()
            ],
            "contact_preferences": customer.contact_preferences,
            "merged_from": customer.merged_from,
            "erased_at": customer.erased_at,
            "version": customer.version,
            "registered_at": customer.created_on.isoformat(),
        }
