"""The identity context's domain: accounts (people and service accounts), their sign-in sessions,
refused sign-ins, and operators' actions on the platform. Pure: no I/O."""

from services.identity.domain.account import Account, AccountKind, password_problems, require_good_password
from services.identity.domain.operator_action import OperatorAction
from services.identity.domain.session import RefusedSignIn, Session, secret_hash

__all__ = [
    "Account",
    "AccountKind",
    "OperatorAction",
    "RefusedSignIn",
    "Session",
    "password_problems",
    "require_good_password",
    "secret_hash",
]
