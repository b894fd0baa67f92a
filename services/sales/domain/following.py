"""Work follows the customer: the one rule by which an opportunity or an activity moves with its
customer to a new owner."""

from __future__ import annotations


def follows_owner(
    is_open: bool,
    holder: str,
    followed_version: int,
    previous_agent_id: str,
    new_agent_id: str,
    owner_version: int,
) -> bool:
    """Open work held by the previous owner moves to the new one, once per change of owner:
    ``owner_version`` is the customer's version that changed the owner, ``followed_version`` the
    last one this work followed, so a change seen again, or an older one arriving late (a dead
    letter requeued), moves nothing. Closed work stays with whoever did it; work someone else holds
    for the customer (a manager's meeting) stays with them."""
    return is_open and owner_version > followed_version and holder == previous_agent_id != new_agent_id
