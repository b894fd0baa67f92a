"""The dashboard's JSON API against the real processes: its OpenAPI document is valid, every
documented operation answers as documented whatever the input (schemathesis, property-based),
bad input on every form and endpoint gets a clear message naming the field and changes nothing,
and requests from another site are refused before anything is asked of a service."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from crm_cli.client import CrmClient
from crm_cli.system import System
from tests.e2e.conftest import ok

PASSWORD = "the api tester's pass phrase"


@pytest.fixture(scope="module")
def operator(system: System) -> str:
    user_id = f"api-op-{uuid.uuid4().hex[:6]}"
    with CrmClient(system.amqp_uri, timeout=30) as anonymous:
        credentials = {"user_id": "admin", "password": system.first_admin_password}
        admin = ok(anonymous.call("identity", "sign_in", credentials))
    with CrmClient(system.amqp_uri, admin["access_token"], timeout=30) as client:
        account = {"user_id": user_id, "display_name": "API tester", "role": "operator", "password": PASSWORD}
        ok(client.call("identity", "create_account", account))
    return user_id


def session_of(system: System, user_id: str) -> tuple[requests.Session, str]:
    """A signed-in browser session: its cookie, and the CSRF token its pages carry."""
    session = requests.Session()
    answer = session.post(
        f"{system.dashboard_url}/api/session", json={"user_id": user_id, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return session, answer.json()["csrf_token"]


def refused(answer: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert "Traceback" not in answer.text and 'File "' not in answer.text
    return error


def rebuild_jobs(session: requests.Session, system: System) -> int:
    projections = session.get(f"{system.dashboard_url}/api/ops/projections", timeout=30).json()
    return len(projections["rebuilds"])


def test_the_openapi_document_is_valid_and_describes_every_page(system: System) -> None:
    document = requests.get(f"{system.dashboard_url}/api/openapi.json", timeout=30).json()
    validate(document)
    paths = set(document["paths"])
    for path in ("/api/customers", "/api/segments", "/api/sla-board", "/api/ops/health", "/api/funnel"):
        assert path in paths
    # The query's rules are the contract's: the same pattern the analytics service validates with.
    search = {p["name"]: p for p in document["paths"]["/api/customers"]["get"]["parameters"]}
    assert search["mobile_phone"]["schema"]["pattern"].startswith("^(\\+86)?1[3-9]")
    assert requests.get(f"{system.dashboard_url}/api/docs", timeout=30).status_code == 200


def test_every_documented_operation_answers_as_documented(system: System, operator: str) -> None:
    session, csrf = session_of(system, operator)
    schema = schemathesis.openapi.from_url(f"{system.dashboard_url}/api/openapi.json")
    tried = 0
    for found in schema.get_all_operations():
        operation = found.ok()
        if operation.path == "/api/session" and operation.method.upper() == "DELETE":
            continue  # signing out would end the session the other operations run in

        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def answers(case: Any) -> None:
            case.call_and_validate(
                base_url=system.dashboard_url,
                session=session,
                headers={"X-CSRF-Token": csrf},
                # The contract's rules across fields (a search needs one criterion) are not in
                # the document: a request it allows may still be refused, with its reason.
                excluded_checks=[positive_data_acceptance],
                timeout=30,
            )

        answers()
        tried += 1
    assert tried >= 20


def test_bad_input_on_every_endpoint_names_the_field_and_changes_nothing(
    system: System, operator: str
) -> None:
    session, csrf = session_of(system, operator)
    url = system.dashboard_url
    before = rebuild_jobs(session, system)
    checks = [
        ("GET", "/api/customers?mobile_phone=12345", "mobile_phone"),
        ("GET", "/api/customers?name=Wang&limit=0", "limit"),
        ("GET", "/api/customers?name=Wang&limit=ten", "limit"),
        ("GET", "/api/customers?name=Wang&surprise=1", "surprise"),
        ("GET", "/api/customers/not-a-customer-id", "customer_id"),
        ("GET", "/api/segments?scheme=astrology", "scheme"),
        ("GET", "/api/segments/members?scheme=value_tier&segment=gold", "segment"),
        ("GET", "/api/funnel?month=2026-13", "month"),
        ("GET", "/api/complaints/statistics?month=last", "month"),
        ("GET", "/api/performance/agent?month=2026-11", "agent_id"),
        ("GET", "/api/plans/team?date=2026-11-31&team_id=T-1", "date"),
        ("GET", "/api/ops/dead-letters?queue=no.such.queue", "queue"),
        ("POST", "/api/ops/projections/rebuild", "model"),
        ("POST", "/api/ops/dead-letters/requeue", "message_id"),
        ("POST", "/api/ops/dead-letters/discard", "queue"),
    ]
    for method, path, field in checks:
        body = {"model": "everything"} if path.endswith("rebuild") else {}
        if path.endswith("requeue"):
            body = {"queue": "identity.departures"}
        if path.endswith("discard"):
            body = {"message_id": "m-1"}
        answer = session.request(
            method,
            f"{url}{path}",
            json=body if method == "POST" else None,
            headers={"X-CSRF-Token": csrf},
            timeout=30,
        )
        error = refused(answer, 400, "validation_failed")
        assert field in {f["field"] for f in error.get("fields", [])}, (path, error)
    # A body that is not JSON, and one far too large.
    garbage = session.post(
        f"{url}/api/ops/projections/rebuild",
        data=b"{not json",
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
        timeout=30,
    )
    assert garbage.status_code == 400 and "Traceback" not in garbage.text
    huge = session.post(
        f"{url}/api/ops/projections/rebuild",
        json={"model": "x" * 200_000},
        headers={"X-CSRF-Token": csrf},
        timeout=30,
    )
    assert huge.status_code == 413
    # A wrong password on the sign-in form: said plainly, no session.
    form = requests.post(f"{url}/sign-in", data={"user_id": operator, "password": "wrong"}, timeout=30)
    assert form.status_code == 401 and "Wrong user id or password" in form.text
    assert "crm_session" not in form.cookies
    assert rebuild_jobs(session, system) == before, "a refused request started nothing"


def test_cross_site_and_tokenless_requests_are_refused_before_any_service_is_asked(
    system: System, operator: str
) -> None:
    session, csrf = session_of(system, operator)
    url = system.dashboard_url
    before = rebuild_jobs(session, system)
    rebuild = f"{url}/api/ops/projections/rebuild"
    # Another site's page posting with the victim's cookie (the browser adds it, and the Origin).
    refused(
        session.post(
            rebuild, json={"model": "audit_log"}, headers={"Origin": "https://evil.example"}, timeout=30
        ),
        403,
        "csrf_refused",
    )
    refused(
        session.post(
            rebuild,
            json={"model": "audit_log"},
            headers={"Origin": "https://evil.example", "X-CSRF-Token": csrf},
            timeout=30,
        ),
        403,
        "csrf_refused",
    )
    # The cookie alone, without the page's token; an old or made-up token.
    refused(session.post(rebuild, json={"model": "audit_log"}, timeout=30), 403, "csrf_refused")
    refused(
        session.post(rebuild, json={"model": "audit_log"}, headers={"X-CSRF-Token": "guessed"}, timeout=30),
        403,
        "csrf_refused",
    )
    refused(session.post(f"{url}/sign-out", data={"csrf_token": "guessed"}, timeout=30), 403, "csrf_refused")
    # No session at all; a made-up session cookie.
    refused(requests.get(f"{url}/api/ops/health", timeout=30), 401, "unauthenticated")
    refused(
        requests.get(f"{url}/api/summary", cookies={"crm_session": "made-up"}, timeout=30),
        401,
        "unauthenticated",
    )
    assert rebuild_jobs(session, system) == before
    # The cookie the browser holds is out of scripts' and other sites' reach.
    signed = requests.post(
        f"{url}/api/session", json={"user_id": operator, "password": PASSWORD}, timeout=30
    ).headers["Set-Cookie"]
    assert "HttpOnly" in signed and "SameSite=Strict" in signed
    page = session.get(f"{url}/ops/health", timeout=30)
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
