"""Nameko entrypoint of the identity context: one line per RPC.

Signing in, changing one's password, refreshing and ending a session, client credentials and the
public key set need no caller token (they are how one gets one); everything else does. Identity
follows its own revocations straight from its store."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from nameko.rpc import rpc

from contracts import rpc as schemas
from crm_shared.nameko_support import Application, EventSourcedService
from crm_shared.rpc import Handler
from services.identity.application import IdentityApplication


class IdentityService(EventSourcedService):
    name = "identity"

    app: IdentityApplication = Application(IdentityApplication.from_settings)

    def _command(self, operation: str, schema: type[Schema], payload: Any, handler: Handler) -> dict:
        return self.request.run(operation, schema, payload, handler, command=True)

    def _public(self, operation: str, schema: type[Schema], payload: Any, handler: Handler) -> dict:
        return self.request.run(operation, schema, payload, handler, public=True)

    # Administration ---------------------------------------------------------------------------

    @rpc
    def create_account(self, payload: Any) -> dict:
        return self._command("create_account", schemas.CreateAccount, payload, self.app.create_account)

    @rpc
    def create_service_account(self, payload: Any) -> dict:
        return self._command(
            "create_service_account", schemas.CreateServiceAccount, payload, self.app.create_service_account
        )

    @rpc
    def change_role(self, payload: Any) -> dict:
        return self._command("change_role", schemas.ChangeRole, payload, self.app.change_role)

    @rpc
    def disable_account(self, payload: Any) -> dict:
        return self._command("disable_account", schemas.DisableAccount, payload, self.app.disable_account)

    @rpc
    def enable_account(self, payload: Any) -> dict:
        return self._command("enable_account", schemas.EnableAccount, payload, self.app.enable_account)

    @rpc
    def reset_password(self, payload: Any) -> dict:
        return self._command("reset_password", schemas.ResetPassword, payload, self.app.reset_password)

    @rpc
    def rotate_client_secret(self, payload: Any) -> dict:
        return self._command(
            "rotate_client_secret", schemas.RotateClientSecret, payload, self.app.rotate_client_secret
        )

    @rpc
    def record_operator_action(self, payload: Any) -> dict:
        return self._command(
            "record_operator_action", schemas.RecordOperatorAction, payload, self.app.record_operator_action
        )

    @rpc
    def get_account(self, payload: Any) -> dict:
        return self.request.run("get_account", schemas.GetAccount, payload, self.app.get_account)

    @rpc
    def list_accounts(self, payload: Any) -> dict:
        return self.request.run("list_accounts", schemas.ListAccounts, payload, self.app.list_accounts)

    @rpc
    def list_revocations(self, payload: Any) -> dict:
        return self.request.run(
            "list_revocations", schemas.ListRevocations, payload, self.app.list_revocations
        )

    # Signing in -------------------------------------------------------------------------------

    @rpc
    def sign_in(self, payload: Any) -> dict:
        return self._public("sign_in", schemas.SignIn, payload, self.app.sign_in)

    @rpc
    def change_password(self, payload: Any) -> dict:
        return self._public("change_password", schemas.ChangePassword, payload, self.app.change_password)

    @rpc
    def refresh_session(self, payload: Any) -> dict:
        return self._public("refresh_session", schemas.RefreshSession, payload, self.app.refresh_session)

    @rpc
    def sign_out(self, payload: Any) -> dict:
        return self._public("sign_out", schemas.SignOut, payload, self.app.sign_out)

    @rpc
    def sign_in_service(self, payload: Any) -> dict:
        return self._public("sign_in_service", schemas.SignInService, payload, self.app.sign_in_service)

    @rpc
    def get_signing_keys(self, payload: Any) -> dict:
        return self._public("get_signing_keys", schemas.GetSigningKeys, payload, self.app.get_signing_keys)

    def revocations_since(self, since: float | None) -> dict[str, Any]:
        """Its own revocations, from its own tables (``CrmService.follow_revocations``)."""
        from crm_shared.auth import Caller, Role
        from crm_shared.domain import CommandMeta

        reader = Caller(
            "service:identity", Role.SYSTEM, kind="service", scopes=("identity.list_revocations",)
        )
        return self.app.list_revocations({"since": since}, CommandMeta.new(reader))
