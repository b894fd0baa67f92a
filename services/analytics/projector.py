"""The analytics projector process: keeps ``customer_360`` in MongoDB up to date from
``crm.events``."""

from __future__ import annotations

import argparse
import logging
import signal

from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from crm_shared.config import Settings
from crm_shared.projector import ProjectorRunner
from services.analytics.store import Customer360Store, ensure_indexes, mongo_client

QUEUE = "analytics.customer_360"


def is_store_outage(error: BaseException) -> bool:
    return isinstance(error, AutoReconnect | ConnectionFailure | ServerSelectionTimeoutError)


def build_runner(settings: Settings) -> ProjectorRunner:
    store = Customer360Store(mongo_client(settings.mongo_uri)[settings.mongo_database])
    ensure_indexes(store.collection())
    return ProjectorRunner(settings.amqp_uri, QUEUE, store.apply, is_transient=is_store_outage)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="crm-projector",
        description=(
            f"Consume crm.events from the durable queue {QUEUE} and maintain the customer_360 "
            f"read model in MongoDB (MONGO_URI). Invalid messages go to {QUEUE}.dead."
        ),
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runner = build_runner(Settings.from_env())
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    signal.signal(signal.SIGINT, lambda *_: runner.stop())
    runner.run()


if __name__ == "__main__":
    main()
