"""The COPY pipe on a real server, as full_load's COPY path uses it: a query's rows, streamed from a
READ ONLY source connection into a COPY on a target connection, arrive exactly and are counted
exactly; batch boundaries and progress are reported while the source is still producing; a failure
on either side surfaces as that side's own error, the source query is stopped, and rolling the
target back leaves nothing. (That memory stays flat whatever the row count is bench's business.)"""
from __future__ import annotations

import random
import threading
import uuid

import psycopg2
import pytest
from psycopg2 import errors as pg_errors

from etl_console.warehouse.copy_pipe import SourceFailed, copy_pipe
from etl_console.warehouse.full_load import SourceRowCounter
from etl_console.warehouse.source import open_read_only
from tests.conftest import wait_for


def tricky_query(rows: int) -> str:
    """Values COPY's text format must escape: tabs, newlines, CRs, backslashes, a literal \\N and \\.,
    NULL beside '', unicode beyond the BMP, arrays and json holding the same."""
    return rf"""
SELECT i AS id,
       CASE i % 9 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'two\nlines\r\nand a CR\r'
                  WHEN 3 THEN E'tab\there\t' WHEN 4 THEN E'back\\slash \\t \\n end\\'
                  WHEN 5 THEN 'ünïcødé ☃ 𝄞 日本語' WHEN 6 THEN '\N' WHEN 7 THEN '\.'
                  ELSE 'plain ' || i END AS label,
       CASE WHEN i % 4 = 0 THEN NULL ELSE (i * 1.25)::numeric(12, 2) END AS amount,
       CASE WHEN i % 6 = 0 THEN NULL ELSE ARRAY[E'a\tb', NULL, E'c\nd', '', '\N'] END AS tags,
       jsonb_build_object('s', E'q"\t\\\n', 'n', i) AS doc
FROM generate_series(1, {rows}) AS i
"""


def plain_query(rows: int) -> str:
    return f"SELECT i AS id, 'row ' || i AS label FROM generate_series(1, {rows}) AS i"


def gated_query(key: int, rows: int, free_rows: int, width: int) -> str:
    """rows rows of about `width` bytes; after the first free_rows the source waits for advisory lock
    `key`, so a test can hold the source mid-stream for as long as it needs, with no timing."""
    return (
        f"SELECT i AS id, repeat('x', {width}) AS label FROM generate_series(1, {rows}) AS i "
        f"WHERE i <= {free_rows} OR pg_advisory_lock_shared({key}) IS NOT NULL"
    )


@pytest.fixture
def scratch(sql):
    """A schema of this test's own, holding `loaded (id int, label text)`; dropped afterwards."""
    schema = f"copy_pipe_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE SCHEMA {schema}")
    sql(f"CREATE TABLE {schema}.loaded (id int, label text)")
    yield schema
    sql(f"DROP SCHEMA {schema} CASCADE")


class Ends:
    """A source connection (READ ONLY, as full_load opens it) and a target connection."""

    def __init__(self, dsn: str) -> None:
        self.source = psycopg2.connect(dsn, application_name="copy-pipe-test source")
        self.target = psycopg2.connect(dsn, application_name="copy-pipe-test target")
        self.source_cursor = open_read_only(self.source, statement_timeout_s=120)
        self.target_cursor = self.target.cursor()
        self.boundaries: list[int] = []
        self.progress: list[tuple[int, int]] = []
        self.cancels = 0

    def cancel_source(self) -> None:
        self.cancels += 1
        self.source.cancel()

    def pipe(self, query: str, table: str, batch_size: int, on_boundary=None, progress=False, source_rows=None) -> int:
        return copy_pipe(
            self.source_cursor, f"COPY (\n{query}\n) TO STDOUT", self.target_cursor, f"COPY {table} FROM STDIN",
            batch_size, on_boundary or self.boundaries.append, self.cancel_source,
            on_progress=(lambda read, written: self.progress.append((read, written))) if progress else None,
            source_rows=source_rows,
        )

    def close(self) -> None:
        self.source.close()
        self.target.close()


@pytest.fixture
def ends(dsn, scratch):
    """Closed before the scratch schema is dropped: an open target transaction would block the DROP."""
    opened = Ends(dsn)
    yield opened
    opened.close()


@pytest.fixture
def advisory_gate(dsn):
    """Holds an advisory lock (random key) that gated_query's source waits for until open() is called."""
    key = random.randrange(1 << 40, 1 << 48)
    holder = psycopg2.connect(dsn, application_name="copy-pipe-test gate")
    holder.autocommit = True
    holder.cursor().execute("SELECT pg_advisory_lock(%s)", (key,))

    class Gate:
        def __init__(self) -> None:
            self.key = key

        def open(self) -> None:
            holder.cursor().execute("SELECT pg_advisory_unlock_all()")

    yield Gate()
    holder.close()


def in_background(work):
    """Run work() in a thread; the returned outcome() joins it and returns its result or raises its error."""
    result: dict = {}

    def run():
        try:
            result["value"] = work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def outcome(timeout: float = 120.0):
        thread.join(timeout)
        assert not thread.is_alive(), "the pipe did not finish"
        if "error" in result:
            raise result["error"]
        return result["value"]

    return outcome


def waiting_for_lock(sql, pid: int) -> bool:
    return sql("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pid,)) == [(True,)]


def pipe_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("etl-copy-")]


def assert_the_source_stops(ends: Ends, sql) -> None:
    """After a failure the pipe has cancelled the source query and left no thread behind. PostgreSQL
    defers a cancel while the backend is blocked writing to a client that stopped reading (the pipe
    is closed by then), so the query may end only when the load closes the source connection, as
    Load.run always does on its way out: either way it stops, and nothing keeps reading it."""
    pid = ends.source.get_backend_pid()
    wait_for(lambda: not pipe_threads(), timeout=30, message="the pipe's threads to end")
    ends.source.close()
    wait_for(lambda: sql("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND state = 'active'", (pid,))
             == [(0,)], timeout=30, message="the source query to stop")


@pytest.mark.parametrize("rows", [0, 1, 999, 60_000])
def test_every_value_arrives_exactly_and_the_row_count_is_exact(ends, sql, scratch, rows):
    sql(f"CREATE TABLE {scratch}.expected AS {tricky_query(rows)}")
    sql(f"CREATE TABLE {scratch}.tricky (LIKE {scratch}.expected)")

    copied = ends.pipe(tricky_query(rows), f"{scratch}.tricky", batch_size=1000)
    ends.target.commit()

    assert copied == rows  # 60,000 rows are several of the pipe's chunks; escaped newlines do not count
    assert sql(f"SELECT count(*) FROM {scratch}.tricky") == [(rows,)]
    assert sql(f"SELECT count(*) FROM ((TABLE {scratch}.expected EXCEPT ALL TABLE {scratch}.tricky) UNION ALL "
               f"(TABLE {scratch}.tricky EXCEPT ALL TABLE {scratch}.expected)) AS difference") == [(0,)]
    if rows >= 9:
        labels = dict(sql(f"SELECT id, label FROM {scratch}.tricky WHERE id BETWEEN 1 AND 9"))
        assert labels == {1: "", 2: "two\nlines\r\nand a CR\r", 3: "tab\there\t", 4: "back\\slash \\t \\n end\\",
                          5: "ünïcødé ☃ 𝄞 日本語", 6: "\\N", 7: "\\.", 8: "plain 8", 9: None}
        assert sql(f"SELECT tags, doc FROM {scratch}.tricky WHERE id = 1") == [
            (["a\tb", None, "c\nd", "", "\\N"], {"s": 'q"\t\\\n', "n": 1})]


@pytest.mark.parametrize("batch_size", [1, 7, 1000, 25_000, 100_000])
def test_each_boundary_passed_is_reported_as_a_multiple_of_batch_size(ends, scratch, batch_size):
    rows = 50_000
    assert ends.pipe(plain_query(rows), f"{scratch}.loaded", batch_size) == rows

    # A chunk that passes several boundaries reports the last of them; the rows after the last
    # whole batch are the caller's to report (full_load calls on_batch with the total itself).
    assert all(boundary % batch_size == 0 for boundary in ends.boundaries)
    assert ends.boundaries == sorted(set(ends.boundaries))
    last_whole_batch = rows - rows % batch_size
    assert ends.boundaries[-1:] == ([last_whole_batch] if last_whole_batch else [])


def test_boundaries_are_reported_while_the_source_is_still_producing(ends, sql, scratch, advisory_gate):
    # Rows wider than the server's 8 KiB send buffer leave it as they are produced.
    query = gated_query(advisory_gate.key, rows=10, free_rows=5, width=10_000)
    outcome = in_background(lambda: ends.pipe(query, f"{scratch}.loaded", batch_size=2))

    wait_for(lambda: 4 in ends.boundaries, timeout=60, message="boundary 4 while the source waits")
    wait_for(lambda: waiting_for_lock(sql, ends.source.get_backend_pid()), timeout=30,
             message="the source waiting at row 6")  # still producing: rows 6-10 are to come
    advisory_gate.open()

    assert outcome() == 10
    assert ends.boundaries == sorted(set(ends.boundaries)) and ends.boundaries[-1] == 10
    assert all(boundary % 2 == 0 for boundary in ends.boundaries)


def test_progress_is_reported_between_boundaries_for_a_slow_source(ends, scratch):
    # 40 rows of 10 KB, one every 0.05 s (server side): about 2 s of source, far below one batch.
    query = (f"SELECT i AS id, repeat('x', 10000) AS label FROM generate_series(1, 40) AS i "
             "WHERE pg_sleep(0.05) IS NOT NULL")
    assert ends.pipe(query, f"{scratch}.loaded", batch_size=1000, progress=True) == 40

    assert ends.boundaries == []
    assert ends.progress, "no progress while a slow source produced its rows"
    assert all(0 < written <= read for read, written in ends.progress)
    assert ends.progress[0][1] < 40  # the first report came before the end
    assert ends.progress == sorted(ends.progress)


def test_a_source_whose_rows_sit_in_its_send_buffer_is_asked_how_far_it_is(ends, sql, scratch, dsn, advisory_gate):
    # Three short rows stay in the server's send buffer while it waits for the gate: nothing reaches
    # the pipe, so only the source's own count (pg_stat_progress_copy, as full_load asks) shows them.
    query = gated_query(advisory_gate.key, rows=6, free_rows=3, width=5)
    counter = SourceRowCounter(dsn, ends.source.get_backend_pid())
    try:
        outcome = in_background(lambda: ends.pipe(query, f"{scratch}.loaded", batch_size=1000, progress=True,
                                                  source_rows=counter))
        wait_for(lambda: ends.progress and ends.progress[-1][0] == 3, timeout=60,
                 message="progress of 3 rows read while the source waits")
        assert ends.progress[-1][1] < 3  # read by the source, not yet written
        wait_for(lambda: waiting_for_lock(sql, ends.source.get_backend_pid()), timeout=30,
                 message="the source waiting at row 4")
        advisory_gate.open()
        assert outcome() == 6
    finally:
        counter.close()
    assert sql(f"SELECT count(*) FROM {scratch}.loaded") == [(0,)]  # nothing is visible before the commit
    ends.target.commit()
    assert sql(f"SELECT count(*) FROM {scratch}.loaded") == [(6,)]


@pytest.mark.parametrize("failing_row", [1, 5000])
def test_a_source_failing_mid_stream_raises_source_failed_and_the_target_rolls_back_to_nothing(
        ends, sql, scratch, failing_row):
    query = f"SELECT i AS id, (1 / (i - {failing_row}))::text AS label FROM generate_series(1, 10000) AS i"

    with pytest.raises(SourceFailed) as failure:
        ends.pipe(query, f"{scratch}.loaded", batch_size=1000)

    assert isinstance(failure.value.error, pg_errors.DivisionByZero)  # the source's own error, kept
    assert "division by zero" in str(failure.value)
    assert all(boundary < failing_row for boundary in ends.boundaries)
    assert not pipe_threads()
    ends.target.rollback()
    assert sql(f"SELECT count(*) FROM {scratch}.loaded") == [(0,)]
    ends.target_cursor.execute(f"SELECT count(*) FROM {scratch}.loaded")  # the target is usable again
    assert ends.target_cursor.fetchone() == (0,)


def test_a_target_error_surfaces_as_the_targets_own_error_and_stops_the_source(ends, sql, scratch):
    sql(f"CREATE TABLE {scratch}.strict (id int, label text NOT NULL)")
    query = ("SELECT i AS id, CASE WHEN i = 3000 THEN NULL ELSE 'row ' || i END AS label "
             "FROM generate_series(1, 200000) AS i")

    with pytest.raises(pg_errors.NotNullViolation) as failure:
        ends.pipe(query, f"{scratch}.strict", batch_size=1000)

    assert 'column "label"' in str(failure.value)
    assert ends.cancels == 1
    assert_the_source_stops(ends, sql)
    ends.target.rollback()
    assert sql(f"SELECT count(*) FROM {scratch}.strict") == [(0,)]


class Paused(Exception):
    """What a hook raises at a boundary to stop the load (full_load's hooks raise LoadCancelled)."""


def test_a_cancel_raised_at_a_boundary_stops_both_ends(ends, sql, scratch):
    def cancel_at_2000(boundary: int) -> None:
        ends.boundaries.append(boundary)
        if boundary >= 2000:
            raise Paused("paused by a user")

    with pytest.raises(Paused, match="paused by a user"):  # the hook's own exception, unwrapped
        ends.pipe(plain_query(5_000_000), f"{scratch}.loaded", batch_size=1000, on_boundary=cancel_at_2000)

    assert ends.cancels == 1 and ends.boundaries[-1] >= 2000
    assert_the_source_stops(ends, sql)
    ends.target.rollback()
    assert sql(f"SELECT count(*) FROM {scratch}.loaded") == [(0,)]
