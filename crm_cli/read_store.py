"""``crm compact-read-store``: leave no old copy of erased personal data in the read-model
database's files.

SecantusDB keeps its data in WiredTiger files, uncompressed. An update or a delete leaves the old
bytes in freed pages of the data and index files, the oplog keeps every inserted document whole
(for an hour, or longer on a quiet server: it is pruned every thousand writes), and the journal
keeps recent writes until its segment rotates. No server command rewrites all of that. So the
compaction copies every live document, with each collection's options and indexes, over the wire
into a new server on an empty directory, swaps the directories, and overwrites the old files
before deleting them. The oplog is not copied. It runs with the system's read-model database
stopped (nothing may write meanwhile); it refuses to run beside one that is running.

Wire protocol only: SecantusDB (GPL-2.0) is run as a program, never imported."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from crm_cli.progress import ProgressBar
from crm_cli.system import free_port, secantus_argv, wait_for_port

SYSTEM_DATABASES = ("admin", "config", "local")
COPY_BATCH = 1000


@contextmanager
def secantus_on(storage: Path) -> Iterator[MongoClient]:
    """A SecantusDB server of our own on ``storage``, for the copy; stopped cleanly after."""
    port = free_port()
    process = subprocess.Popen(
        secantus_argv(storage, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            wait_for_port(port, 60)
        except Exception:
            process.kill()
            problem = (process.communicate(timeout=10)[1] or b"").decode(errors="replace")[-2000:]
            raise SystemExit(
                f"could not open the read-model database at {storage}: is it still running? Stop the "
                f"system first (Ctrl-C on 'make run').\n{problem}"
            ) from None
        client: MongoClient = MongoClient(
            f"mongodb://127.0.0.1:{port}/?retryWrites=false", directConnection=True
        )
        try:
            yield client
        finally:
            client.close()
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def overwrite_and_remove(directory: Path) -> None:
    """Zeros over every file, then delete: unlinking alone leaves the bytes on the disk."""
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        size = path.stat().st_size
        with path.open("r+b") as handle:
            for _ in range(0, size, 1 << 20):
                handle.write(bytes(min(1 << 20, size - handle.tell())))
            handle.flush()
            os.fsync(handle.fileno())
    shutil.rmtree(directory)


def _copy_collection(source: Any, target: Any, name: str, info: Mapping[str, Any], bar: ProgressBar) -> None:
    options = dict(info.get("options", {}))
    if info.get("type") == "view":
        target.command({"create": name, "viewOn": options["viewOn"], "pipeline": options.get("pipeline", [])})
        return
    options.pop("uuid", None)
    target.create_collection(name, **options)
    batch: list[dict[str, Any]] = []
    for document in source[name].find({}, batch_size=COPY_BATCH):
        batch.append(document)
        if len(batch) >= COPY_BATCH:
            target[name].insert_many(batch, ordered=True)
            bar.advance(len(batch))
            batch = []
    if batch:
        target[name].insert_many(batch, ordered=True)
        bar.advance(len(batch))
    for index_name, spec in source[name].index_information().items():
        if index_name == "_id_":
            continue
        keys = spec.pop("key")
        spec.pop("v", None)
        spec.pop("ns", None)
        target[name].create_index(keys, name=index_name, **spec)


def compact(storage: Path) -> dict[str, int]:
    """Rewrite the database at ``storage`` (stopped) so that only live documents remain in its files."""
    storage = storage.resolve()
    fresh = storage.with_name(storage.name + ".compacting")
    old = storage.with_name(storage.name + ".old")
    if not storage.exists() and old.is_dir() and fresh.is_dir():
        fresh.rename(storage)  # a compaction died between its two renames: finish it
    if not storage.is_dir():
        raise SystemExit(f"no read-model database at {storage}")
    for leftover in (fresh, old):
        if leftover.exists():
            overwrite_and_remove(leftover)
    fresh.mkdir(mode=0o700)
    copied = {"databases": 0, "collections": 0, "documents": 0}
    with secantus_on(storage) as source, secantus_on(fresh) as target:
        names = [d for d in source.list_database_names() if d not in SYSTEM_DATABASES]
        total = sum(
            source[d][c].estimated_document_count() for d in names for c in source[d].list_collection_names()
        )
        bar = ProgressBar(total, "copying live documents", unit="documents")
        for database in names:
            copied["databases"] += 1
            for info in source[database].list_collections():
                if info["name"].startswith("system."):
                    continue  # the profiler's records would carry whole commands
                _copy_collection(source[database], target[database], info["name"], info, bar)
                if info.get("type") != "view":
                    kept = target[database][info["name"]].count_documents({})
                    if kept != source[database][info["name"]].count_documents({}):
                        raise SystemExit(
                            f"{database}.{info['name']}: the copy holds {kept} documents, not as many as "
                            f"the original; nothing was replaced ({fresh} is left to look at)"
                        )
                copied["collections"] += 1
        bar.finish()
        copied["documents"] = bar.done
    storage.rename(old)
    fresh.rename(storage)
    overwrite_and_remove(old)
    return copied
