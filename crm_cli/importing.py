"""``crm import customers FILE``: register an existing book from a spreadsheet (CSV or XLSX).

Each row is read, mapped to the registration's fields by its header, validated with the very
contract ``register_customer`` uses, and sent through the same command path, several at a time.
A row's command id comes from its natural key (the national id), so importing the same file again,
or a file that overlaps it, registers nobody twice: those rows answer ``repeated``. Rows that fail
are written to a rejection report (row number, field, rule, message) beside the file, and a
summary at the end says what happened to every row. The file is streamed, never held whole."""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from contracts.rpc import RegisterCustomer
from contracts.validators import normalise_national_id
from crm_cli.client import CrmClient
from crm_cli.progress import ProgressBar
from crm_shared.errors import flatten_marshmallow_errors

COMMANDS = ("import",)
IMPORT_NAMESPACE = uuid.UUID("d2c7e5a9-41f6-4b38-9e0a-6c5b1f7d3e84")
ADDRESS_FIELDS = ("line1", "line2", "city", "province", "postal_code", "country")
FIELDS = (
    "full_name",
    "national_id",
    "mobile_phone",
    "email",
    "date_of_birth",
    "owning_agent_id",
    *ADDRESS_FIELDS,
)
# Headers understood without a mapping file: the field names, and what spreadsheets usually say.
KNOWN_HEADERS: dict[str, str] = {
    **{name: name for name in FIELDS},
    "name": "full_name",
    "customer name": "full_name",
    "姓名": "full_name",
    "客户姓名": "full_name",
    "national id": "national_id",
    "id number": "national_id",
    "身份证号": "national_id",
    "身份证号码": "national_id",
    "phone": "mobile_phone",
    "mobile": "mobile_phone",
    "手机": "mobile_phone",
    "手机号": "mobile_phone",
    "e-mail": "email",
    "邮箱": "email",
    "birth date": "date_of_birth",
    "date of birth": "date_of_birth",
    "出生日期": "date_of_birth",
    "agent": "owning_agent_id",
    "agent id": "owning_agent_id",
    "业务员": "owning_agent_id",
    "代理人": "owning_agent_id",
    "street": "line1",
    "address": "line1",
    "地址": "line1",
    "城市": "city",
    "省份": "province",
    "postcode": "postal_code",
    "邮编": "postal_code",
}
IN_FLIGHT = 64
WORKERS = 8


# Reading -----------------------------------------------------------------------------------------


def _cell(value: Any) -> str | None:
    """A spreadsheet cell as the text a form would have had."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(row number as the spreadsheet shows it, cells by header), one row at a time."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            rows = workbook.worksheets[0].iter_rows(values_only=True)
            headers = [_cell(h) or "" for h in next(rows, ())]
            for number, values in enumerate(rows, start=2):
                if any(v is not None for v in values):
                    yield number, dict(zip(headers, map(_cell, values), strict=False))
        finally:
            workbook.close()
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for number, values in enumerate(reader, start=2):
            if any(values.values()):
                yield number, {k or "": _cell(v) for k, v in values.items()}


def count_rows(path: Path) -> int:
    """The number of data rows, for the progress bar (a streaming pass, or the sheet's dimension)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True)
        try:
            return max((workbook.worksheets[0].max_row or 1) - 1, 0)
        finally:
            workbook.close()
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


# Mapping and validation (pure) -----------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    row: int
    field: str
    rule: str
    message: str


def column_mapping(headers: list[str], mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """Which field each header fills: the mapping file's word first, then the known headers (case
    and surrounding spaces aside). Unknown headers are ignored; a field two headers fill is an
    error."""
    wanted = {k.strip().lower(): v for k, v in (mapping or {}).items()}
    for target in wanted.values():
        if target not in FIELDS:
            raise SystemExit(f"the mapping names '{target}', which is no field; fields: {', '.join(FIELDS)}")
    columns: dict[str, str] = {}
    for header in headers:
        key = header.strip().lower()
        found = wanted.get(key) or KNOWN_HEADERS.get(key)
        if found is None:
            continue
        if found in columns.values():
            raise SystemExit(f"two columns fill '{found}' (one is '{header}'): say which in a mapping file")
        columns[header] = found
    missing = [
        f
        for f in ("full_name", "national_id", "mobile_phone", "date_of_birth", "owning_agent_id", "line1")
        if f not in columns.values()
    ]
    if missing:
        raise SystemExit(
            f"no column for {', '.join(missing)}; the file's headers are {headers}. Give a mapping file "
            '(--mapping) of JSON {"file header": "field"}'
        )
    return columns


def registration(cells: Mapping[str, str | None], columns: Mapping[str, str]) -> dict[str, Any]:
    """The ``register_customer`` payload a row's cells make (empty cells are left out)."""
    values = {
        target: cells.get(header) for header, target in columns.items() if cells.get(header) is not None
    }
    address = {name: values.pop(name) for name in ADDRESS_FIELDS if name in values}
    return {**values, "address": address}


def validate_row(number: int, payload: dict[str, Any]) -> list[Rejection]:
    """What the registration contract says of the row; nothing when it would be accepted."""
    try:
        RegisterCustomer().load(payload)
    except ValidationError as e:
        return [Rejection(number, f.field, f.rule, f.message) for f in flatten_marshmallow_errors(e.messages)]
    return []


def row_command_id(payload: Mapping[str, Any], secret: bytes) -> str:
    """The row's idempotency key, from its natural key: the same person imported twice is one
    registration. Keyed with the importer's own key (``session.import_key``): a command id is
    published with the events it
    caused, and one derived from the national id alone would give the national id away to anyone
    who tries them all."""
    national_id = normalise_national_id(payload["national_id"])
    digest = hmac.new(secret, f"register_customer:{national_id}".encode(), hashlib.sha256).hexdigest()
    return str(uuid.uuid5(IMPORT_NAMESPACE, digest))


def refusal(number: int, reply: Mapping[str, Any]) -> list[Rejection]:
    """The service's refusal of a row, as rejections."""
    error = reply.get("error", {})
    if error.get("code") == "validation_failed" and any(
        f["field"] == "command_id" for f in error.get("fields", [])
    ):
        return [
            Rejection(
                number,
                "national_id",
                "repeated_in_import",
                "this national id was imported already with other details (an earlier row, or an "
                "earlier import): correct one of them",
            )
        ]
    fields = error.get("fields") or [
        {"field": "_row", "rule": error.get("code", "error"), "message": error.get("message", "")}
    ]
    return [Rejection(number, f["field"], f["rule"], f["message"]) for f in fields]


# Running -----------------------------------------------------------------------------------------


@dataclass
class Summary:
    rows: int = 0
    registered: int = 0
    already_registered: int = 0
    rejected_rows: int = 0
    rejections_by_rule: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "registered": self.registered,
            "already_registered": self.already_registered,
            "rejected_rows": self.rejected_rows,
            "rejections_by_rule": dict(sorted(self.rejections_by_rule.items())),
            "seconds": round(self.seconds, 1),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None,
        }


class Registrar:
    """Sends registrations from ``WORKERS`` threads, each with its own client (a nameko proxy is not
    thread-safe)."""

    def __init__(self, client_factory: Callable[[], CrmClient], secret: bytes) -> None:
        self.secret = secret
        self.work: queue.Queue[tuple[dict[str, Any], Future[dict]] | None] = queue.Queue(IN_FLIGHT)
        self.threads = [
            threading.Thread(target=self._serve, args=(client_factory,), daemon=True) for _ in range(WORKERS)
        ]
        for thread in self.threads:
            thread.start()

    def _serve(self, client_factory: Callable[[], CrmClient]) -> None:
        with client_factory() as client:
            while (item := self.work.get()) is not None:
                payload, future = item
                try:
                    future.set_result(
                        client.call(
                            "customer",
                            "register_customer",
                            payload,
                            command_id=row_command_id(payload, self.secret),
                        )
                    )
                except Exception as e:
                    future.set_exception(e)

    def submit(self, payload: dict[str, Any]) -> Future[dict]:
        future: Future[dict] = Future()
        self.work.put((payload, future))
        return future

    def close(self) -> None:
        for _ in self.threads:
            self.work.put(None)
        for thread in self.threads:
            thread.join(60)


def import_customers(
    path: Path,
    client_factory: Callable[[], CrmClient],
    report_path: Path,
    secret: bytes,
    mapping: Mapping[str, str] | None = None,
    bar: ProgressBar | None = None,
) -> Summary:
    summary = Summary()
    started = time.monotonic()
    rows = read_rows(path)
    first = next(rows, None)
    if first is None:
        raise SystemExit(f"{path} has no rows")
    columns = column_mapping(list(first[1]), mapping)
    registrar = Registrar(client_factory, secret)
    pending: list[tuple[int, Future[dict]]] = []
    with report_path.open("w", newline="", encoding="utf-8") as handle:
        report = csv.writer(handle)
        report.writerow(["row", "field", "rule", "message"])

        def reject(found: list[Rejection]) -> None:
            summary.rejected_rows += 1
            for r in found:
                report.writerow([r.row, r.field, r.rule, r.message])
                summary.rejections_by_rule[r.rule] += 1

        def settle(number: int, future: Future[dict]) -> None:
            try:
                reply = future.result()
            except Exception as e:
                reject(
                    [Rejection(number, "_row", "unreachable", f"the customer service did not answer: {e}")]
                )
                return
            if reply.get("ok"):
                if reply.get("repeated"):
                    summary.already_registered += 1
                else:
                    summary.registered += 1
            else:
                reject(refusal(number, reply))

        def chain() -> Iterator[tuple[int, dict[str, str | None]]]:
            yield first
            yield from rows

        try:
            for number, cells in chain():
                summary.rows += 1
                payload = registration(cells, columns)
                if problems := validate_row(number, payload):
                    reject(problems)
                else:
                    pending.append((number, registrar.submit(payload)))
                # Settle in row order, keeping at most IN_FLIGHT rows in memory.
                while pending and (len(pending) >= IN_FLIGHT or pending[0][1].done()):
                    settle(*pending.pop(0))
                if bar is not None:
                    bar.advance(1)
            for item in pending:
                settle(*item)
        finally:
            registrar.close()
    summary.seconds = time.monotonic() - started
    return summary


# The command -----------------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    importing = commands.add_parser(
        "import",
        help="register an existing book of customers from a CSV or XLSX file",
        description="Reads the file row by row (the first row holds the headers), maps the columns "
        "by header (full_name or 姓名, national_id or 身份证号, mobile_phone or 手机, email, "
        "date_of_birth or 出生日期, owning_agent_id or 业务员, line1 or 地址, city, province, "
        "postal_code; --mapping for other headers), validates every row as register_customer "
        "does, and registers the good rows through it. Rows for unknown or departed agents, "
        "duplicates and invalid values are written to FILE.rejections.csv (row, field, rule, "
        "message), and a summary is printed at the end (and to FILE.summary.json). Importing "
        "the same file again registers nobody twice. A progress bar shows rows done, rows per "
        "second and time left. Exit status: 0 when every row was registered (now or before), 2 "
        "when some were rejected (see the report).",
    )
    importing.add_argument("what", choices=["customers"], help="what the file holds")
    importing.add_argument("file", type=Path, help="a .csv (UTF-8) or .xlsx file")
    importing.add_argument(
        "--mapping", type=Path, help='a JSON file of {"file header": "field"} for headers not known'
    )
    importing.add_argument("--report", type=Path, help="where to write the rejections (default: beside FILE)")


def run_import(args: argparse.Namespace, client_factory: Callable[[], CrmClient], secret: bytes) -> int:
    path: Path = args.file
    if not path.is_file():
        raise SystemExit(f"no file {path}")
    mapping = json.loads(args.mapping.read_text()) if args.mapping else None
    report_path = args.report or path.with_name(path.name + ".rejections.csv")
    bar = ProgressBar(count_rows(path), f"importing {path.name}", unit="rows")
    summary = import_customers(path, client_factory, report_path, secret, mapping, bar)
    bar.finish()
    result = {**summary.as_dict(), "file": str(path), "rejection_report": str(report_path)}
    path.with_name(path.name + ".summary.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if summary.rejected_rows == 0 else 2
