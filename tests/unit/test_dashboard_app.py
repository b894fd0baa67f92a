"""The dashboard's web application without services: sign-in opens a server-side session behind a
secure cookie, every change needs the session's CSRF token and a same-site origin, arguments are
checked with the contract schemas before any service is asked, refusals are structured, and the
OpenAPI document is generated from those schemas."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from services.dashboard.app import COOKIE, create_app
from services.dashboard.sessions import Sessions
from services.dashboard.views import Views

CUSTOMER = "6f1c2d9e-5a4b-4c3d-8e2f-1a0b9c8d7e6f"


def token_for(role: str) -> str:
    claims = {"sub": role, "role": role, "exp": int(time.time()) + 600}
    return jwt.encode(claims, "k" * 32, algorithm="HS256")  # only its expiry is read here


class Services:
    """What the services answer, and every call asked of them (service, method, payload, token)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any], str]] = []

    def __call__(self, service: str, method: str, payload: dict[str, Any], token: str) -> dict[str, Any]:
        self.calls.append((service, method, payload, token))
        if method == "get_customer_360" and token == token_for("agent"):
            return {"ok": False, "error": {"code": "permission_denied", "message": "not your customer"}}
        return {"ok": True, "result": {"asked": method, "payload": payload}}


def sign_in(credentials: dict[str, Any]) -> dict[str, Any]:
    role = credentials["user_id"]
    if credentials["password"] != "right horse battery":
        return {"ok": False, "error": {"code": "unauthenticated", "message": "wrong user id or password"}}
    account = {"user_id": role, "role": role, "agent_id": "AG-1" if role == "agent" else None}
    return {
        "ok": True,
        "result": {"account": account, "access_token": token_for(role), "refresh_token": "r-" + role},
    }


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
def client(services: Services) -> FlaskClient:
    sessions = Sessions(renew=lambda _refresh: None)
    signed_out: list[str] = []
    app = create_app(Views(services, None, None, None), sessions, sign_in, lambda r, _a: signed_out.append(r))
    return app.test_client()


def signed_in(client: FlaskClient, role: str) -> str:
    answer = client.post("/api/session", json={"user_id": role, "password": "right horse battery"})
    assert answer.status_code == 200, answer.json
    return answer.json["csrf_token"]


def test_sign_in_sets_a_secure_http_only_strict_cookie_and_the_api_works_with_it(client: FlaskClient) -> None:
    answer = client.post("/api/session", json={"user_id": "operator", "password": "right horse battery"})
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "Secure" in cookie
    assert "SameSite=Strict" in cookie
    assert answer.json["user"]["role"] == "operator"
    assert client.get("/api/session").json["user"]["user_id"] == "operator"
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]


def test_a_wrong_password_opens_no_session(client: FlaskClient) -> None:
    answer = client.post("/api/session", json={"user_id": "agent", "password": "wrong horse battery"})
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthenticated"
    assert "Set-Cookie" not in answer.headers
    assert client.get("/api/summary").status_code == 401


def test_arguments_are_checked_with_the_contract_schema_before_any_service_is_asked(
    client: FlaskClient, services: Services
) -> None:
    signed_in(client, "operator")
    answer = client.get("/api/customers?national_id_last4=12&limit=0")
    assert answer.status_code == 400
    fields = {f["field"] for f in answer.json["error"]["fields"]}
    assert fields == {"national_id_last4", "limit"}
    assert client.get("/api/customers/not-a-uuid").status_code == 400
    assert services.calls == []
    assert client.get("/api/customers?name=Wang").json["asked"] == "find_customers"
    assert services.calls[-1][2] == {"name": "Wang", "limit": 20}


def test_every_call_carries_the_signed_in_persons_token_and_their_refusals_pass_through(
    client: FlaskClient, services: Services
) -> None:
    signed_in(client, "agent")
    answer = client.get(f"/api/customers/{CUSTOMER}")
    assert answer.status_code == 403 and answer.json["error"]["code"] == "permission_denied"
    assert services.calls[-1][3] == token_for("agent")
    refused = client.get("/api/ops/health")
    assert refused.status_code == 403 and "operators" in refused.json["error"]["message"]


def test_a_change_needs_the_sessions_csrf_token_and_a_same_site_origin(
    client: FlaskClient, services: Services
) -> None:
    csrf = signed_in(client, "operator")
    body = {"model": "customer_360"}
    assert client.post("/api/ops/projections/rebuild", json=body).json["error"]["code"] == "csrf_refused"
    wrong = client.post("/api/ops/projections/rebuild", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    other_site = client.post(
        "/api/ops/projections/rebuild",
        json=body,
        headers={"X-CSRF-Token": csrf, "Origin": "https://elsewhere.example"},
    )
    assert other_site.json["error"]["code"] == "csrf_refused"
    assert services.calls == []
    done = client.post("/api/ops/projections/rebuild", json=body, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200 and [c[1] for c in services.calls] == [
        "start_rebuild",
        "record_operator_action",
    ]
    # The page's action is recorded for the audit under the operator's own token.
    service, _, recorded, token = services.calls[-1]
    assert (service, recorded["action"], recorded["target"], token) == (
        "identity",
        "rebuild_started",
        "customer_360",
        token_for("operator"),
    )


def test_signing_out_ends_the_session(client: FlaskClient) -> None:
    csrf = signed_in(client, "manager")
    assert client.delete("/api/session", headers={"X-CSRF-Token": csrf}).json == {"signed_out": True}
    assert client.get("/api/summary").status_code == 401


def test_the_openapi_document_is_generated_from_the_contract_schemas(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").json
    assert document["openapi"] == "3.0.3"
    parameters = {p["name"] for p in document["paths"]["/api/customers"]["get"]["parameters"]}
    assert {"name", "mobile_phone", "national_id_last4", "owning_agent_id", "limit", "cursor"} <= parameters
    assert "/api/ops/dead-letters/requeue" in document["paths"]


def test_an_unexpected_failure_answers_a_correlation_id_and_no_stack_trace(services: Services) -> None:
    def broken(*_args: Any) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    app = create_app(
        Views(broken, None, None, None), Sessions(renew=lambda _r: None), sign_in, lambda *_: None
    )
    client = app.test_client()
    signed_in(client, "operator")
    answer = client.get("/api/customers?name=Wang")
    assert answer.status_code == 500
    assert "secret internals" not in answer.text and "Traceback" not in answer.text
    assert answer.json["error"]["message"].startswith("unexpected failure (correlation ")


def test_the_api_reference_page_and_its_library_are_served_by_the_dashboard_itself(
    client: FlaskClient,
) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200 and "/static/vendor/swagger-ui-5.36.0/swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another site
    assert client.get("/static/vendor/swagger-ui-5.36.0/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/vendor/chartjs-4.5.1/chart.umd.js").status_code == 200


def test_pages_sign_in_by_form_and_keep_operators_pages_for_operators(client: FlaskClient) -> None:
    assert client.get("/").headers["Location"] == "/sign-in"
    wrong = client.post("/sign-in", data={"user_id": "agent", "password": "wrong horse battery"})
    assert wrong.status_code == 401 and "Wrong user id or password" in wrong.text
    right = client.post("/sign-in", data={"user_id": "agent", "password": "right horse battery"})
    assert right.status_code == 302 and right.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200 and 'data-page="summary"' in home.text
    assert "/ops/health" not in home.text  # no operators' links for an agent
    assert client.get("/ops/dead-letters").status_code == 403
    assert client.get("/customers/not-a-uuid").status_code == 400
    assert client.post("/sign-out").status_code == 403  # no CSRF token: refused


def test_a_sign_in_form_posted_from_another_site_is_refused(client: FlaskClient) -> None:
    answer = client.post(
        "/sign-in",
        data={"user_id": "agent", "password": "right horse battery"},
        headers={"Origin": "https://elsewhere.example"},
    )
    assert answer.status_code == 403 and "Set-Cookie" not in answer.headers


def test_the_rebuild_contract_names_every_read_model() -> None:
    from contracts.rpc import READ_MODELS
    from services.analytics.read_models import PROJECTIONS

    assert tuple(sorted(PROJECTIONS)) == READ_MODELS
