"""A long pass over a collection outlives its connection: the read-model server restarts in the
middle of a scan, and the scan reads on from where it was, every document once."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pymongo import MongoClient, WriteConcern
from pymongo.collection import Collection

from crm_cli.system import free_port, secantus_argv, wait_for_port
from services.analytics import paging
from services.analytics.paging import ScanInterrupted, scan


@contextmanager
def server(storage: Path, port: int) -> Iterator[None]:
    process = subprocess.Popen(
        secantus_argv(storage, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, 30)
        yield
    finally:
        process.kill()  # as a crash would; the inserts were journaled
        process.wait(30)


Book = tuple[int, Collection]


@pytest.fixture
def book(monkeypatch: pytest.MonkeyPatch) -> Iterator[Book]:
    """A port for the server the test starts and stops, and a collection on it whose client
    notices a restart within half a second (no waits between resumes)."""
    monkeypatch.setattr(paging, "pause", lambda _seconds: None)
    port = free_port()
    client: MongoClient = MongoClient(
        f"mongodb://127.0.0.1:{port}/?retryWrites=false",
        serverSelectionTimeoutMS=3_000,  # also what closing, with the server gone, waits
        heartbeatFrequencyMS=500,
    )
    yield port, client["crm"].get_collection("book", write_concern=WriteConcern(j=True))
    client.close()


def test_a_scan_reads_on_after_the_server_restarts_every_document_once(
    tmp_path: Path, book: Book, caplog: pytest.LogCaptureFixture
) -> None:
    port, collection = book
    seen: list[int] = []
    with server(tmp_path, port):
        collection.insert_many([{"_id": n, "n": n} for n in range(250)])
        pages = scan(collection, {}, None, 10)
        for _ in range(3):
            seen += [d["_id"] for d in next(pages)]
    with server(tmp_path, port):  # the cursor is gone, and its connection with it
        seen += [d["_id"] for page in pages for d in page]
    assert "lost its cursor after 30 documents" in caplog.text
    assert sorted(seen) == list(range(250))


def test_a_scan_that_deletes_what_it_reads_starts_again_from_the_first_match(
    tmp_path: Path, book: Book
) -> None:
    port, collection = book
    deleted: list[int] = []
    with server(tmp_path, port):
        collection.insert_many([{"_id": n, "stale": n % 2 == 0} for n in range(200)])
        pages = scan(collection, {"stale": True}, {"_id": 1}, 10, removes_what_it_reads=True)
        for _ in range(2):
            ids = [d["_id"] for d in next(pages)]
            collection.delete_many({"_id": {"$in": ids}})
            deleted += ids
    with server(tmp_path, port):
        for page in pages:
            ids = [d["_id"] for d in page]
            collection.delete_many({"_id": {"$in": ids}})
            deleted += ids
        assert collection.count_documents({"stale": True}) == 0
        assert collection.count_documents({}) == 100
    assert sorted(deleted) == list(range(0, 200, 2))


def test_a_scan_whose_collection_was_dropped_meanwhile_ends_with_an_error_not_short(
    tmp_path: Path, book: Book
) -> None:
    port, collection = book
    with server(tmp_path, port):
        collection.insert_many([{"_id": n} for n in range(100)])
        pages = scan(collection, {}, None, 10)
        next(pages)
    with server(tmp_path, port):
        collection.drop()  # a rebuild swapped the collection out while the server was away
        with pytest.raises(ScanInterrupted):
            next(pages)
