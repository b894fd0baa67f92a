"""``crm erase`` and ``crm compact-read-store``: erase a person's personal data, and afterwards
rewrite the read-model database so its files keep no old copy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from crm_cli.client import CrmClient
from crm_cli.ownership import print_failure
from crm_cli.system import REPO

COMMANDS = ("erase",)


def add_commands(commands: Any) -> None:
    erase = commands.add_parser(
        "erase",
        help="erase a customer's personal data (name, national id, phones, emails, addresses)",
        description="Shreds the customer's key, so that nothing the event store holds of the person "
        "can be read again, and publishes customer.erased, on which every read model replaces the "
        "personal data with an erased marker (downstream consumers must do the same). Policies, "
        "premiums and tickets stay: they are statutory records. Duplicates merged into the customer "
        "are erased with it. Operators and admins only; it cannot be undone. Afterwards, run "
        "'crm compact-read-store' in a maintenance window so that the read-model database's files "
        "keep no old copy either.",
    )
    erase.add_argument("customer_id")
    erase.add_argument("--reason", required=True, help="why (the legal ground)")
    erase.add_argument("--request", dest="request_reference", required=True, help="the request's reference")


def add_maintenance_commands(commands: Any) -> None:
    compaction = commands.add_parser(
        "compact-read-store",
        help="after erasures: rewrite the read-model database so its files keep no old values",
        description="SecantusDB leaves the old bytes of updated and deleted documents in its files "
        "(freed pages, the journal) until they are overwritten. After an erasure, run this with the "
        "system stopped: it copies every live document, with its collection's options and "
        "indexes, into a fresh database directory, swaps it in, and overwrites the old files "
        "before deleting them. Then start the system again.",
    )
    compaction.add_argument(
        "--storage-path",
        default=str(REPO / ".run" / "mongo"),
        help="the read-model database's directory (default: .run/mongo, as 'make run' uses)",
    )


def compact_read_store(args: argparse.Namespace) -> None:
    from crm_cli.read_store import compact

    copied = compact(Path(args.storage_path))
    print(
        f"compacted {args.storage_path}: {copied['documents']:,} live documents in "
        f"{copied['collections']} collections kept; old files overwritten and removed"
    )


def run(args: argparse.Namespace, client: CrmClient) -> int:
    reply = client.call(
        "customer",
        "erase_customer",
        {"customer_id": args.customer_id, "reason": args.reason, "request_reference": args.request_reference},
    )
    if not reply["ok"]:
        return print_failure(reply)
    print(json.dumps(reply["result"], indent=2))
    return 0
