"""source_query must be one read-only SELECT/WITH statement: a clear 400 when saved (DESIGN §4)."""
from __future__ import annotations

import pytest

from .conftest import BASE, body_of, detail_of, get_pipeline

REJECTED = [
    pytest.param("SELECT 1; SELECT 2", "single", id="two-statements"),
    pytest.param("SELECT 1; DELETE FROM analytics.film_dim", "single", id="select-then-delete"),
    pytest.param("DELETE FROM analytics.film_dim", "DELETE", id="delete"),
    pytest.param("UPDATE analytics.film_dim SET title = 'x'", "UPDATE", id="update"),
    pytest.param("INSERT INTO analytics.film_dim VALUES (gen_random_uuid(), 't', 1)", "INSERT", id="insert"),
    pytest.param("DROP TABLE analytics.film_dim", "DROP", id="drop"),
    pytest.param("TRUNCATE analytics.film_dim", "TRUNCATE", id="truncate"),
    pytest.param(
        "WITH gone AS (DELETE FROM analytics.film_dim RETURNING *) SELECT * FROM gone", "modify", id="writing-cte"
    ),
    pytest.param(
        "WITH x AS (UPDATE analytics.film_dim SET title = 't' RETURNING film_id) SELECT film_id FROM x",
        "modify",
        id="writing-cte-update",
    ),
    pytest.param("SELECT * INTO analytics.copy FROM content.film_work", "INTO", id="select-into"),
    pytest.param("SELECT * FROM content.film_work FOR UPDATE", "FOR UPDATE", id="for-update"),
    pytest.param("SELECT * FROM content.film_work FOR SHARE", "lock", id="for-share"),
    pytest.param("SELECT set_config('statement_timeout', '0', false)", "set_config", id="set-config"),
    pytest.param("SELEC 1", "not valid SQL", id="syntax-error"),
    pytest.param("   ", "empty", id="blank"),
    pytest.param("-- only a comment", "found 0", id="comment-only"),
]

ACCEPTED = [
    "SELECT id AS film_id, title, rating FROM content.film_work",
    "SELECT id AS film_id, title, rating FROM content.film_work;",
    "  -- comment\n  select id as film_id, title, rating from content.film_work\n",
    "WITH f AS (SELECT id, title, rating FROM content.film_work) SELECT id AS film_id, title, rating FROM f",
    "SELECT id AS film_id, title, rating FROM content.film_work UNION ALL SELECT id, title, rating FROM content.film_work",
    "SELECT 'DELETE FROM x; DROP TABLE y' AS film_id",  # keywords inside a string are just text
]


@pytest.mark.parametrize("query, says", REJECTED)
def test_create_rejects_with_a_clear_400(client, query, says):
    body = {"name": "q", "target_table": "analytics.film_dim", "source_query": query}
    detail = detail_of(client.post(f"{BASE}/", json=body), 400)
    assert isinstance(detail, str) and "source_query" in detail and says in detail
    assert body_of(client.get(f"{BASE}/"), 200) == []


@pytest.mark.parametrize("query, says", REJECTED)
def test_patch_rejects_with_a_clear_400_and_keeps_the_old_query(client, pipeline, query, says):
    detail = detail_of(client.patch(f"{BASE}/{pipeline['id']}", json={"source_query": query}), 400)
    assert "source_query" in detail and says in detail
    assert get_pipeline(client, pipeline["id"]) == pipeline


@pytest.mark.parametrize("query", ACCEPTED)
def test_single_select_or_with_is_accepted(client, create_pipeline, query):
    assert create_pipeline(source_query=query)["status"] == "IDLE"


def test_target_is_checked_before_the_query(client):
    # The contract lists the target error first; a bad query must not hide it.
    body = {"name": "q", "target_table": "analytics.nope", "source_query": "DELETE FROM x"}
    assert detail_of(client.post(f"{BASE}/", json=body), 400) == "target_table 'analytics.nope' is not allowed"
