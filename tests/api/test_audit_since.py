"""GET /api/v1/audit?since= takes any offset ISO 8601 allows (PostgreSQL itself refuses beyond ±15:59)."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.api.conftest import body_of, detail_of
from tests.api.test_audit import AUDIT, VIEWER, app_overrides, as_, create  # noqa: F401 (fixture)


@pytest.mark.parametrize("since, found", [
    ("2000-01-01T00:00:00+17:53", 1),  # 1999-12-31T06:07Z
    ("2999-01-01T00:00:00-23:59", 0),
    ("9999-12-31T23:59:59-01:00", 0),  # past datetime's range in UTC: after every entry
    ("0001-01-01T00:00:00+01:00", 1),  # before it: before every entry
])
def test_since_with_any_offset(client, since, found):
    create(client)
    entries = body_of(client.get(f"{AUDIT}?since={quote(since)}", headers=as_(VIEWER)), 200)
    assert len(entries) == found


def test_since_that_is_not_a_time_is_422(client):
    assert detail_of(client.get(f"{AUDIT}?since=nonsense", headers=as_(VIEWER)), 422)[0]["loc"] == ["query", "since"]
