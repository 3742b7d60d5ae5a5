"""The list page for many pipelines: keyset pages by name, filters that combine, counts per status,
bulk Pause/Run of the selected rows, and clear 400 pages for bad page parameters."""
from __future__ import annotations

import html as html_lib
import uuid

import pytest

from tests.console.conftest import text
from tests.console.markup import parse

TARGETS = ("analytics.film_dim", "analytics.film_rating_agg")
STATUS_CYCLE = ("IDLE", "FAILED", "PAUSED", "IDLE", "RUNNING")


@pytest.fixture
def app_overrides():
    # No runner: a bulk Run leaves its queued runs RUNNING for the test to count, and seeded
    # RUNNING pipelines are not claimed.
    return {"START_RUNNER": False}


def seed(sql, count: int) -> None:
    """count pipelines m_0001.. by SQL: statuses cycle, every third targets film_rating_agg, and
    every fourth has a newest run that FAILED (an older one succeeded)."""
    sql(
        """
        INSERT INTO etl_pipelines (id, name, type, mode, enabled, status, target_table, batch_size, source_query)
        SELECT gen_random_uuid(), 'm_' || lpad(i::text, 4, '0'), 'SQL', 'full', true,
               (%(statuses)s::text[])[1 + i %% 5], (%(targets)s::text[])[1 + (i %% 3 = 0)::int], 1000,
               'SELECT id AS film_id, title, rating FROM content.film_work'
        FROM generate_series(1, %(count)s) AS i
        """,
        {"count": count, "statuses": list(STATUS_CYCLE), "targets": list(TARGETS)},
    )
    sql(
        """
        INSERT INTO etl_pipeline_runs (id, pipeline_id, status, started_at, finished_at, rows_read, rows_written,
                                       error_message, worker_id, trigger)
        SELECT gen_random_uuid(), p.id, r.status, now() - r.age, now() - r.age + interval '1 second', 10, 10,
               CASE WHEN r.status = 'FAILED' THEN 'boom' END, 'seed', 'manual'
        FROM etl_pipelines p
        CROSS JOIN LATERAL (VALUES ('SUCCESS', interval '2 hours'),
                                   (CASE WHEN right(p.name, 4)::int %% %(every)s = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
                                    interval '1 hour')) AS r(status, age)
        WHERE p.status <> 'RUNNING'
        """,
        {"every": 4},
    )


def names(html: str) -> list[str]:
    """The pipelines the list shows, by the name that links to each."""
    return [name.text for name in parse(html).select("td.name > a[href]")]


def link(html: str, rel: str) -> str | None:
    found = parse(html).first(f'a[href][rel="{rel}"]')
    return found.attrs["href"] if found is not None else None


def flash(html: str) -> str:
    return parse(html).first("p.notice.flash").text


def counts_shown(html: str) -> dict[str, str]:
    """The number on each status filter (ALL, STALE and each status)."""
    return {count.attrs["data-count"]: count.one("span.count-number").text
            for count in parse(html).select("a[data-count]")}


def count_link(html: str, status: str):
    return parse(html).one(f'a[data-count="{status}"]')


def ids_named(sql, *wanted: str) -> list[str]:
    rows = dict(sql("SELECT name, id::text FROM etl_pipelines WHERE name = ANY(%s)", (list(wanted),)))
    return [rows[name] for name in wanted]


def statuses(sql) -> dict[str, str]:
    return dict(sql("SELECT name, status FROM etl_pipelines"))


# paging ------------------------------------------------------------------------------------------
def test_forward_and_back_every_pipeline_exactly_once(client, sql):
    seed(sql, 137)
    everyone = sorted(name for (name,) in sql("SELECT name FROM etl_pipelines"))

    html = text(client.get("/?limit=20"))
    assert link(html, "prev") is None and link(html, "first") is None
    forward, pages = names(html), 1
    while (next_url := link(html, "next")) is not None:
        assert "limit=20" in next_url
        html = text(client.get(next_url))
        forward += names(html)
        pages += 1
    assert forward == everyone and pages == 7  # 6 full pages and 17 on the last
    assert len(names(html)) == 17

    backward = names(html)
    while (previous_url := link(html, "prev")) is not None:
        html = text(client.get(previous_url))
        backward = names(html) + backward
    assert backward == everyone
    assert link(html, "first") is None  # back at the start


def test_a_page_link_keeps_the_filters_and_a_cursor_past_the_end_says_so(client, sql):
    seed(sql, 60)
    expected = sorted(name for (name,) in sql(
        "SELECT name FROM etl_pipelines WHERE status = 'IDLE' AND target_table = 'analytics.film_dim'"))
    html = text(client.get("/?status=IDLE&target=analytics.film_dim&limit=5"))
    seen = names(html)
    while (next_url := link(html, "next")) is not None:
        assert "status=IDLE" in next_url and "target=analytics.film_dim" in next_url
        html = text(client.get(next_url))
        seen += names(html)
    assert seen == expected

    past = text(client.get("/?after=zzz"))
    assert names(past) == [] and "No more pipelines." in past and link(past, "first") == "/"


# filters and counts ------------------------------------------------------------------------------
def test_filters_combine(client, sql):
    seed(sql, 60)

    def listed(query: str) -> list[str]:
        return names(text(client.get(f"/?limit=500&{query}")))

    def expected(where: str) -> list[str]:
        return sorted(name for (name,) in sql(f"SELECT name FROM etl_pipelines p WHERE {where}"))

    newest_failed = ("(SELECT status FROM etl_pipeline_runs r WHERE r.pipeline_id = p.id "
                     "ORDER BY started_at DESC LIMIT 1) = 'FAILED'")
    assert listed("failing=1") == expected(newest_failed) != []
    assert listed("status=FAILED&failing=1") == expected(f"status = 'FAILED' AND {newest_failed}") != []
    assert listed("target=analytics.film_rating_agg&status=PAUSED") == expected(
        "target_table = 'analytics.film_rating_agg' AND status = 'PAUSED'") != []
    assert listed("q=m_001&target=analytics.film_dim&failing=1") == expected(
        f"name LIKE 'm\\_001%%' AND target_table = 'analytics.film_dim' AND {newest_failed}") == ["m_0016"]
    assert listed("target=analytics.nothing") == []


def test_stale_filter_lists_pipelines_past_their_freshness_window(client, sql):
    seed(sql, 10)
    sql("UPDATE etl_pipelines SET freshness_minutes = 30, last_success_at = now() - interval '2 hours' "
        "WHERE name IN ('m_0002', 'm_0008')")
    sql("UPDATE etl_pipelines SET freshness_minutes = 30, last_success_at = now() WHERE name = 'm_0003'")
    assert names(text(client.get("/?stale=1"))) == ["m_0002", "m_0008"]
    assert names(text(client.get("/?stale=1&status=FAILED"))) == []  # m_0002 is PAUSED, m_0008 IDLE

    def counted(query: str) -> dict[str, str]:
        return counts_shown(text(client.get(f"/?{query}")))

    # The Stale count is of what the list shows; its link adds stale=1 to the filters.
    assert counted("")["STALE"] == "2" and counted("status=IDLE")["STALE"] == "1"
    assert counted("status=FAILED")["STALE"] == "0" and counted("stale=1")["ALL"] == "2"
    html = text(client.get("/?status=PAUSED"))
    stale_link = count_link(html, "STALE").attrs["href"]
    assert names(text(client.get(stale_link))) == ["m_0002"]


def test_counts_per_status_follow_the_other_filters_and_link_to_their_status(client, sql):
    seed(sql, 60)
    html = text(client.get("/?target=analytics.film_dim"))
    counts = counts_shown(html)
    by_status = dict(sql("SELECT status, count(*)::text FROM etl_pipelines WHERE target_table = "
                         "'analytics.film_dim' GROUP BY status"))
    assert counts == {**by_status, "ALL": str(sum(int(n) for n in by_status.values())), "STALE": "0"}
    assert counts["ALL"] == "40"

    paused_link = count_link(html, "PAUSED").attrs["href"]
    assert "target=analytics.film_dim" in paused_link and "status=PAUSED" in paused_link
    assert len(names(text(client.get(paused_link)))) == int(counts["PAUSED"])
    # With a status chosen the counts stay those of every status, and "All" drops the status again.
    chosen = text(client.get(paused_link))
    assert count_link(chosen, "PAUSED").attrs.get("aria-current") == "true"
    all_link = count_link(chosen, "ALL").attrs["href"]
    assert "status=" not in all_link and "target=analytics.film_dim" in all_link


# bulk actions ------------------------------------------------------------------------------------
def test_bulk_pause_acts_on_exactly_the_selected_and_says_what_happened(client, sql, token):
    seed(sql, 10)
    before = statuses(sql)
    chosen = ["m_0001", "m_0002", "m_0003", "m_0004"]  # FAILED, PAUSED, IDLE, RUNNING
    back_to = "/?status=IDLE&limit=5"
    response = client.post("/pipelines/bulk/pause",
                           data={"csrf_token": token, "next": back_to, "ids": ids_named(sql, *chosen)})
    assert response.status_code == 303 and response.headers["Location"] == back_to

    after = statuses(sql)
    assert {name for name in after if after[name] != before[name]} == {"m_0001", "m_0003", "m_0004"}
    assert all(after[name] == "PAUSED" for name in chosen)
    assert flash(text(client.get(back_to))) == "Pause selected: 3 paused, 1 already paused."
    # The same service as a single Pause: each one is in the audit log.
    audited = sql("SELECT object_name FROM etl_audit_log WHERE action = 'pipeline.pause' ORDER BY object_name")
    assert [name for (name,) in audited] == chosen
    assert "flash" not in text(client.get(back_to))  # shown once


def test_bulk_run_queues_exactly_the_selected_once(client, sql, token):
    seed(sql, 10)
    chosen = ids_named(sql, "m_0001", "m_0002", "m_0006")
    response = client.post("/pipelines/bulk/run", data={"csrf_token": token, "ids": chosen}, follow_redirects=True)
    assert flash(text(response)) == "Run selected: 3 started."
    queued = sql("SELECT p.name FROM etl_pipeline_runs r JOIN etl_pipelines p ON p.id = r.pipeline_id "
                 "WHERE r.status = 'RUNNING' ORDER BY 1")
    assert [name for (name,) in queued] == ["m_0001", "m_0002", "m_0006"]

    again = client.post("/pipelines/bulk/run", data={"csrf_token": token, "ids": chosen + [str(uuid.uuid4())]},
                        follow_redirects=True)
    assert flash(text(again)) == "Run selected: 3 already running, 1 not found."
    assert sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING'") == [(3,)]


def test_bulk_actions_refuse_without_csrf_and_with_a_bad_selection(client, sql, token):
    seed(sql, 3)
    ids = ids_named(sql, "m_0001", "m_0003")
    before = statuses(sql)
    for action in ("pause", "run"):
        refused = client.post(f"/pipelines/bulk/{action}", data={"ids": ids})
        assert refused.status_code == 400 and "CSRF" in text(refused)
        bad = client.post(f"/pipelines/bulk/{action}", data={"csrf_token": token, "ids": ids + ["not-an-id"]})
        assert bad.status_code == 400 and bad.mimetype == "text/html"
        assert "not a pipeline id" in text(bad)
    assert statuses(sql) == before
    assert sql("SELECT count(*) FROM etl_pipeline_runs WHERE status = 'RUNNING'") == [(0,)]

    too_many = client.post("/pipelines/bulk/pause", data={"csrf_token": token, "ids": [str(uuid.uuid4())] * 501})
    assert too_many.status_code == 400 and "at most 500" in text(too_many)
    nothing = client.post("/pipelines/bulk/pause", data={"csrf_token": token}, follow_redirects=True)
    assert flash(text(nothing)) == "Pause selected: no pipeline was selected."


# bad parameters ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, message",
    [
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=501", "limit must be a whole number from 1 to 500"),
        ("limit=ten", "limit must be a whole number from 1 to 500"),
        ("after=a&before=b", "either 'after' or 'before'"),
        ("after=" + "x" * 300, "That page link is not valid"),
        ("after=a%00b", "'after' contains a NUL character"),
        ("q=a%00", "'q' contains a NUL character"),
        ("target=x%00", "'target' contains a NUL character"),
    ],
)
def test_bad_page_parameters_are_a_clear_400_page(client, query, message):
    response = client.get(f"/?{query}")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert message in html_lib.unescape(text(response))
    fragment = client.get(f"/?{query}", headers={"HX-Request": "true", "HX-Target": "pipeline-table"})
    assert fragment.status_code == 400 and 'id="error-message"' in text(fragment)
