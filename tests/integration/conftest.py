from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from services.analytics.catalog import mongo_client


@pytest.fixture
def database(mongo_uri: str) -> Iterator[Any]:
    """A read-model database of the test's own on the session's SecantusDB, dropped after it."""
    client = mongo_client(mongo_uri)
    name = f"crm_test_{uuid.uuid4().hex[:8]}"
    yield client[name]
    client.drop_database(name)
    client.close()
