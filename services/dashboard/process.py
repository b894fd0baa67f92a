"""``crm-dashboard``: the web dashboard, served by waitress (threads; each thread calls the services
over its own RPC client, as the person signed in).

Environment, beside the common settings: ``CRM_DASHBOARD_HOST`` (127.0.0.1) and
``CRM_DASHBOARD_PORT`` (8400) where it listens; ``CRM_RABBITMQ_API_URL`` with
``CRM_RABBITMQ_API_USER`` and ``CRM_RABBITMQ_API_PASSWORD_FILE`` for the queues page (a monitoring
user of the management API); ``CRM_DEAD_LETTER_QUEUES``, the consumer queues whose dead letters
operators handle, comma-separated."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from waitress.server import create_server

from crm_shared.config import Settings
from crm_shared.heartbeat import HeartbeatSender
from crm_shared.process import process_name
from services.dashboard.app import create_app
from services.dashboard.gateway import Gateway
from services.dashboard.ops import DeadLetters, Heartbeats, ManagementApi
from services.dashboard.sessions import Sessions
from services.dashboard.views import Views

log = logging.getLogger("crm.dashboard")


def management_api(env: Mapping[str, str]) -> ManagementApi | None:
    url = env.get("CRM_RABBITMQ_API_URL")
    if not url:
        return None
    password_file = env.get("CRM_RABBITMQ_API_PASSWORD_FILE")
    password = Path(password_file).read_text().strip() if password_file else env["CRM_RABBITMQ_API_PASSWORD"]
    return ManagementApi(url, env["CRM_RABBITMQ_API_USER"], password, env.get("CRM_RABBITMQ_VHOST", "/"))


def build(
    settings: Settings, env: Mapping[str, str], secure_cookies: bool = True
) -> tuple[Flask, Gateway, Heartbeats]:
    gateway = Gateway(settings.amqp_uri)

    def renew(refresh_token: str) -> dict[str, Any] | None:
        reply = gateway.call("identity", "refresh_session", {"refresh_token": refresh_token})
        return reply["result"] if reply.get("ok") else None

    def sign_in(credentials: dict[str, Any]) -> dict[str, Any]:
        return gateway.call("identity", "sign_in", credentials)

    def sign_out(refresh_token: str, access_token: str) -> None:
        gateway.call("identity", "sign_out", {"refresh_token": refresh_token}, access_token)

    heartbeats = Heartbeats(settings.amqp_uri).start()
    queues = [q for q in env.get("CRM_DEAD_LETTER_QUEUES", "").split(",") if q]
    views = Views(
        gateway.call,
        heartbeats,
        management_api(env),
        DeadLetters(settings.amqp_uri, queues) if queues else None,
    )
    app = create_app(views, Sessions(renew), sign_in, sign_out, secure_cookies)
    return app, gateway, heartbeats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-dashboard",
        description="Serve the dashboard: the operators' pages (health, queues, projections, dead "
        "letters) and the business's (customers, segments, the SLA board, performance, plans), "
        "with their JSON API and its OpenAPI reference at /api/docs.",
    )
    parser.add_argument("--host", default=os.environ.get("CRM_DASHBOARD_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CRM_DASHBOARD_PORT", "8400")))
    parser.add_argument("--threads", type=int, default=16, help="requests served at once")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    # Over plain HTTP on loopback (``make run``) a Secure cookie would not come back from every
    # browser; anywhere else the dashboard is behind TLS and its cookie is Secure.
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    app, gateway, heartbeats = build(settings, os.environ, secure_cookies=not loopback)
    beat = HeartbeatSender(settings.amqp_uri, process_name("dashboard")).start()
    server = create_server(app, host=args.host, port=args.port, threads=args.threads)
    log.info("dashboard at http://%s:%s/", args.host, args.port)

    def stop(*_: object) -> None:
        server.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.run()
    except OSError:
        pass  # closed by a signal
    finally:
        beat.stop()
        heartbeats.stop()
        gateway.close()


if __name__ == "__main__":
    main()
