"""The CRM's own durable consumers of crm.events, each queue with the event types it is bound to,
gathered from the contexts' declarations. Relays declare them before publishing, so an event
published before its consumer first started waits in the queue instead of being dropped as
unroutable. (Downstream systems declare their own queues.)"""

from __future__ import annotations

from services.analytics.read_models import consumer_queues as analytics_queues
from services.customer.handover_process import BINDINGS as HANDOVER_BINDINGS
from services.customer.handover_process import QUEUE as HANDOVER_QUEUE
from services.identity.reactions import BINDINGS as IDENTITY_REACTION_BINDINGS
from services.identity.reactions import QUEUE as IDENTITY_REACTION_QUEUE
from services.sales.reactions import BINDINGS as SALES_REACTION_BINDINGS
from services.sales.reactions import QUEUE as SALES_REACTION_QUEUE

CONSUMER_QUEUES: dict[str, tuple[str, ...]] = {
    **analytics_queues(),
    HANDOVER_QUEUE: HANDOVER_BINDINGS,
    SALES_REACTION_QUEUE: SALES_REACTION_BINDINGS,
    IDENTITY_REACTION_QUEUE: IDENTITY_REACTION_BINDINGS,
}

# Which process consumes which queues (each reads only its own: ``crm_cli.broker``).
CONSUMING_PROCESSES: dict[str, tuple[str, ...]] = {
    "projector": tuple(analytics_queues()),
    "handover": (HANDOVER_QUEUE,),
    "sales-reactions": (SALES_REACTION_QUEUE,),
    "identity-reactions": (IDENTITY_REACTION_QUEUE,),
}
