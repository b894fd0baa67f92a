"""Identity's tables beside its store, derived from its own log (``crm_shared.local_tables``): the
accounts (listed for administrators, found by agent id when an agent leaves) and the revocations
every service follows (an account disabled, its role changed, its password or secret reset, a
session ended), by the wall-clock moment before which the revoked tokens were issued."""

from __future__ import annotations

from typing import Any

from eventsourcing.utils import get_topic

from crm_shared.eventstore import CrmApplication
from crm_shared.local_tables import Cursor, LocalProjection, LocalTables, by_event_name
from services.identity.domain import Account, Session

ACCOUNTS = "identity_accounts"
REVOCATIONS = "identity_revocations"
POSITIONS = "identity_local_positions"
# Most revocations one answer lists (a client asks again from the last one).
FEED_PAGE = 5_000


class IdentityTables:
    def __init__(self, app: CrmApplication) -> None:
        self.tables = LocalTables(app)
        events = [
            Account.Created,
            Account.RoleChanged,
            Account.Disabled,
            Account.Enabled,
            Account.PasswordReset,
            Account.ClientSecretRotated,
            Account.ScopesChanged,
            Session.Ended,
        ]
        self.projection = LocalProjection(
            self.tables, "identity", [get_topic(e) for e in events], by_event_name(self), POSITIONS
        )
        if self.tables.creates_tables:
            self.create_tables()

    def create_tables(self) -> None:
        self.tables.create(
            f"CREATE TABLE IF NOT EXISTS {ACCOUNTS} ("
            "user_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, kind TEXT NOT NULL, role TEXT NOT NULL, "
            "agent_id TEXT, disabled BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {ACCOUNTS}_by_agent ON {ACCOUNTS} (agent_id)",
            f"CREATE TABLE IF NOT EXISTS {REVOCATIONS} ("
            "user_id TEXT NOT NULL, session_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, "
            "PRIMARY KEY (user_id, session_id, at))",
            f"CREATE INDEX IF NOT EXISTS {REVOCATIONS}_by_time ON {REVOCATIONS} (at)",
        )
        self.projection.create()

    def catch_up(self) -> int:
        return self.projection.catch_up()

    # Writing ------------------------------------------------------------------------------------

    def _account_created(self, cursor: Cursor, e: Account.Created) -> None:
        cursor.execute(
            f"INSERT INTO {ACCOUNTS} (user_id, display_name, kind, role, agent_id, disabled) "
            "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id) DO NOTHING",
            (e.user_id, e.display_name, e.kind, e.role, e.agent_id),
        )

    def _revoked(self, cursor: Cursor, user_id: str, session_id: str | None, at: float) -> None:
        cursor.execute(
            f"INSERT INTO {REVOCATIONS} (user_id, session_id, at) VALUES (?, ?, ?) "
            "ON CONFLICT (user_id, session_id, at) DO NOTHING",
            (user_id, session_id or "", at),
        )

    def _account_rolechanged(self, cursor: Cursor, e: Account.RoleChanged) -> None:
        cursor.execute(
            f"UPDATE {ACCOUNTS} SET role = ?, agent_id = ? WHERE user_id = ?", (e.role, e.agent_id, e.user_id)
        )
        self._revoked(cursor, e.user_id, None, e.tokens_issued_before)

    def _account_disabled(self, cursor: Cursor, e: Account.Disabled) -> None:
        cursor.execute(f"UPDATE {ACCOUNTS} SET disabled = 1 WHERE user_id = ?", (e.user_id,))
        self._revoked(cursor, e.user_id, None, e.tokens_issued_before)

    def _account_enabled(self, cursor: Cursor, e: Account.Enabled) -> None:
        cursor.execute(f"UPDATE {ACCOUNTS} SET disabled = 0 WHERE user_id = ?", (e.user_id,))

    def _account_passwordreset(self, cursor: Cursor, e: Account.PasswordReset) -> None:
        self._revoked(cursor, e.user_id, None, e.tokens_issued_before)

    def _account_clientsecretrotated(self, cursor: Cursor, e: Account.ClientSecretRotated) -> None:
        self._revoked(cursor, e.user_id, None, e.tokens_issued_before)

    def _account_scopeschanged(self, cursor: Cursor, e: Account.ScopesChanged) -> None:
        self._revoked(cursor, e.user_id, None, e.tokens_issued_before)

    def _session_ended(self, cursor: Cursor, e: Session.Ended) -> None:
        self._revoked(cursor, e.user_id, e.session_id, e.tokens_issued_before)

    # Reading ------------------------------------------------------------------------------------

    def accounts_of_agent(self, agent_id: str) -> list[str]:
        rows = self.tables.query(
            f"SELECT user_id FROM {ACCOUNTS} WHERE agent_id = ? AND disabled = 0", (agent_id,)
        )
        return [r["user_id"] for r in rows]

    def page(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        return self.tables.query(
            f"SELECT * FROM {ACCOUNTS} WHERE user_id > ? ORDER BY user_id LIMIT ?", (after or "", limit)
        )

    def revocations_since(self, since: float) -> list[dict[str, Any]]:
        return self.tables.query(
            f"SELECT user_id, session_id, at FROM {REVOCATIONS} WHERE at >= ? ORDER BY at LIMIT ?",
            (since, FEED_PAGE),
        )
