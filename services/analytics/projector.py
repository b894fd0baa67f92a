"""The analytics projector process: keeps read models in MongoDB up to date from ``crm.events``.
One process runs any set of projections (all by default), each on its own queue and connection in
a thread of its own, so one model's slow batch or poison message never holds up another's; run a
projection alone by naming it (``crm-projector --model customer_360``), on as many machines as
the read-model database can take."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterable

from pymongo.database import Database
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

from crm_shared.config import Settings
from crm_shared.process import run_process
from crm_shared.projector import ProjectorRunner
from services.analytics.catalog import ReadModelCatalog, mongo_client
from services.analytics.projections import AfterBatch, Projection, ProjectionStatus, ProjectionWriter
from services.analytics.read_models import PROJECTIONS
from services.analytics.scoring.config import ScoringConfig
from services.analytics.scoring.live import LiveScores
from services.analytics.store import CUSTOMER_360
from services.analytics.watch.application import ChurnWatchApplication

log = logging.getLogger("crm.projector")


def is_store_outage(error: BaseException) -> bool:
    return isinstance(error, AutoReconnect | ConnectionFailure | ServerSelectionTimeoutError)


def projection_runner(
    amqp_uri: str,
    database: Database,
    projection: Projection,
    status: ProjectionStatus | None = None,
    after: AfterBatch | None = None,
) -> ProjectorRunner:
    catalog = ReadModelCatalog(database)
    projection.ensure_indexes(database[catalog.targets(projection.name).active])
    writer = ProjectionWriter(database, projection, catalog, status, after)
    return ProjectorRunner(
        amqp_uri, projection.queue, writer, binding_key=projection.bindings, is_transient=is_store_outage
    )


def build_runners(settings: Settings, names: Iterable[str] = ()) -> list[ProjectorRunner]:
    database = mongo_client(settings.mongo_uri)[settings.mongo_database]
    status = ProjectionStatus(database, settings.clock())
    chosen = list(names) or list(PROJECTIONS)
    # The 360 projector assesses the churn warning of the customers a batch changed.
    churn_check = LiveScores(
        database, ScoringConfig.from_env(), ChurnWatchApplication.from_settings(settings), settings.clock()
    )
    return [
        projection_runner(
            settings.amqp_uri, database, PROJECTIONS[n], status, churn_check if n == CUSTOMER_360 else None
        )
        for n in chosen
    ]


def run_all(runners: list[ProjectorRunner]) -> None:
    """Run every runner in a thread of its own until each stops."""
    threads = [threading.Thread(target=r.run, name=r.queue.name, daemon=True) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crm-projector",
        description=(
            "Consume crm.events and maintain the analytics read models in MongoDB (MONGO_URI): each "
            "projection on its own durable queue, analytics.<model>, bound to the event types it "
            "takes. Messages it cannot apply go to analytics.<model>.dead with the reason."
        ),
    )
    parser.add_argument(
        "--model",
        action="append",
        choices=sorted(PROJECTIONS),
        default=[],
        help="a read model to keep (repeatable; default: every one)",
    )
    run_process(parser, lambda args, settings: Projectors(build_runners(settings, args.model)), argv)


class Projectors:
    """Every projection's runner, each in a thread of its own, until stopped (``run_process``)."""

    def __init__(self, runners: list[ProjectorRunner]) -> None:
        self.runners = runners

    def run(self) -> None:
        log.info("projecting %s", ", ".join(r.queue.name for r in self.runners))
        run_all(self.runners)

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()


if __name__ == "__main__":
    main()
