"""The PYTHON pipeline's stream: COPY out as CSV -> Arrow record batches -> tasks -> CSV -> COPY in.

The source's COPY (FORMAT csv) is pumped into an OS pipe by copy_pipe's pump thread; Arrow's
streaming CSV reader parses it as it arrives (short reads: a slow source still yields blocks), the
blocks are cut into record batches of exactly batch_size rows, each batch goes through the tasks in
order, and the result is written as CSV into the shadow's COPY FROM STDIN. Parsing, tasks and CSV
writing run in a stage thread at most two batches ahead of the COPY, so a block and a few batches
are in memory at once, whatever the row count (a dedupe keeping the last row holds one row per key,
as it says).

CSV, not COPY's text format: Arrow reads CSV natively, and CSV tells NULL (unquoted empty) from ''
(quoted empty) both ways, so values round-trip exactly.
"""
from __future__ import annotations

import io
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pa_csv

from ..transforms import ColumnsRefused, TransformConfigInvalid, UnknownTransform, transform_class
from ..transforms.base import Transform
from .copy_pipe import CHUNK_BYTES, PROGRESS_S, SourceFailed, _Pump
from .source import SourceColumn
from .load import LoadError

# PostgreSQL types Arrow parses natively from COPY's CSV; every other type stays text (exact: numeric,
# uuid, timestamps, json), and PostgreSQL parses it back on the way in.
_ARROW_TYPES = {"smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(), "real": pa.float32(),
                "double precision": pa.float64(), "boolean": pa.bool_()}


class TransformFailed(LoadError):
    """A task raised: the message names the task, the batch and the exception."""


class TasksInvalid(LoadError):
    """The tasks cannot run as configured (checked at save too; this is the run's own check)."""


@dataclass
class TaskStats:
    position: int
    kind: str
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "kind": self.kind, "rows_in": self.rows_in, "rows_out": self.rows_out,
                "seconds": round(self.seconds, 4)}


@dataclass
class TaskChain:
    """The pipeline's tasks, instantiated for one run (a transform may keep state across batches)."""

    transforms: list[Transform]
    stats: list[TaskStats]
    output_columns: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, tasks: list[dict]) -> "TaskChain":
        transforms, stats = [], []
        for position, task in enumerate(tasks, start=1):
            try:
                transform = transform_class(task["kind"])
                transforms.append(transform(transform.load_config(task.get("config"))))
            except (UnknownTransform, TransformConfigInvalid) as error:
                raise TasksInvalid(f"task {position} ({task['kind']}): {error}") from None
            stats.append(TaskStats(position, task["kind"]))
        return cls(transforms, stats)

    def prepare(self, columns: list[str]) -> list[str]:
        """The load's column list after every task, or TasksInvalid naming the task that refuses."""
        for transform, stats in zip(self.transforms, self.stats):
            try:
                columns = transform.prepare(columns)
            except ColumnsRefused as error:
                raise TasksInvalid(f"task {stats.position} ({stats.kind}): {error}") from None
        self.output_columns = columns
        return columns

    def apply(self, batch: pa.RecordBatch, batch_number: int, start: int = 0) -> pa.RecordBatch:
        for transform, stats in zip(self.transforms[start:], self.stats[start:]):
            started = time.perf_counter()
            try:
                out = transform.apply(batch)
                out = _conform(out, transform.output_columns_)
            except Exception as error:  # noqa: BLE001 - any failure of user code fails the run, named
                raise TransformFailed(
                    f"task {stats.position} ({stats.kind}) failed on batch {batch_number}: "
                    f"{type(error).__name__}: {error}"
                ) from error
            stats.seconds += time.perf_counter() - started
            stats.rows_in += batch.num_rows
            stats.rows_out += out.num_rows
            batch = out
        return batch

    def finish(self, batch_number: int) -> Iterator[pa.RecordBatch]:
        """Rows a task held until the end, pushed through the tasks after it."""
        for index, (transform, stats) in enumerate(zip(self.transforms, self.stats)):
            started = time.perf_counter()
            try:
                held = transform.finish()
                held = _conform(held, transform.output_columns_) if held is not None else None
            except Exception as error:  # noqa: BLE001
                raise TransformFailed(f"task {stats.position} ({stats.kind}) failed at the end of the source "
                                      f"(after batch {batch_number}): {type(error).__name__}: {error}") from error
            stats.seconds += time.perf_counter() - started
            if held is None or held.num_rows == 0:
                continue
            stats.rows_out += held.num_rows
            yield self.apply(held, batch_number, start=index + 1)

    def report(self) -> list[dict[str, Any]]:
        return [stats.as_dict() for stats in self.stats]


def _empty(columns: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({name: pa.array([], pa.string()) for name in columns})


def _conform(batch: Any, columns: list[str]) -> pa.RecordBatch:
    """A transform's output must carry the columns it declared: reorder if needed, else say what differs."""
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else _empty(batch.column_names)
    if not isinstance(batch, pa.RecordBatch):
        raise TypeError(f"returned {type(batch).__name__}, not a pyarrow.RecordBatch")
    names = batch.schema.names
    if names == columns:
        return batch
    if sorted(names) == sorted(columns):
        return batch.select(columns)
    raise ValueError(f"returned columns {names}, but declared {columns}")


def arrow_type(column: SourceColumn) -> pa.DataType:
    return _ARROW_TYPES.get(column.type_name, pa.string())


class _SourceStream:
    """What Arrow's CSV reader reads: the pipe's bytes as they arrive (read1), a source error at EOF."""

    def __init__(self, stream, pump: _Pump) -> None:
        self._stream, self._pump = stream, pump
        self.closed = False
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read1(CHUNK_BYTES if size is None or size < 0 else size)
        if not chunk:
            self._pump.join()
            if self._pump.error is not None:
                self.error = SourceFailed(self._pump.error)
                raise self.error
        return chunk

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class _TargetFeed:
    """The file COPY FROM STDIN reads: CSV of each transformed batch, produced on demand."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.error: BaseException | None = None  # psycopg2 wraps what read() raises; keep the original

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        try:
            return next(self._chunks, b"")
        except BaseException as error:
            self.error = error
            raise

    readline = read


@dataclass
class StreamResult:
    rows_read: int
    rows_written: int
    batches: int
    timings: dict[str, float]


def transform_stream(
    source_cursor,
    copy_out_sql: str,
    source_columns: list[SourceColumn],
    target_cursor,
    copy_in_sql: str,
    chain: TaskChain,
    batch_size: int,
    on_boundary: Callable[[int, int], None],
    cancel_source: Callable[[], None],
    on_progress: Callable[[int, int], None] | None = None,
) -> StreamResult:
    """Run the whole stream; re-raises the source's, a task's or the target's error as it was."""
    _use_system_allocator()

    read_fd, write_fd = os.pipe()
    pump = _Pump(source_cursor, copy_out_sql, write_fd)
    stream = os.fdopen(read_fd, "rb", buffering=CHUNK_BYTES)
    source = _SourceStream(stream, pump)
    counts = {"read": 0, "written": 0, "batches": 0}
    timings = {"parse_s": 0.0, "write_s": 0.0}
    names = [column.name for column in source_columns]

    def open_reader():
        return pa_csv.open_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=names, block_size=1 << 20),
            # COPY's CSV: a quoted value may hold newlines; an empty line is a one-column NULL row.
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={column.name: arrow_type(column) for column in source_columns},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=["t"], false_values=["f"],
            ),
        )

    def between_boundaries(pending_rows: int) -> None:
        if on_progress is not None:
            on_progress(counts["read"] + pending_rows, counts["written"])

    stage = _TransformStage(open_reader, chain, batch_size, timings, between_boundaries)

    def csv_chunks() -> Iterator[bytes]:
        """This (the COPY's) thread only sends bytes and passes batch boundaries; the stage thread
        parses, transforms and writes CSV meanwhile, a batch or two ahead."""
        while True:
            item = stage.next_item()
            if item is None:
                return
            read, written, data = item
            counts["batches"] += 1 if read else 0
            counts["read"] += read
            if data:  # b"" would tell COPY the stream ended
                yield data
            counts["written"] += written
            on_boundary(counts["read"], counts["written"])  # pause and cancel take effect here

    feed = _TargetFeed(csv_chunks())
    pump.start()
    stage.start()
    try:
        target_cursor.copy_expert(copy_in_sql, feed, size=CHUNK_BYTES)
    except BaseException as error:
        stage.stop()
        cancel_source()  # stop the server-side query, not just our pipe
        stream.close()  # unblocks a pump stuck writing into a full pipe, and the stage's reader
        pump.join()
        stage.join()
        for original in (source.error, feed.error):
            if original is not None and original is not error:
                raise _unwrap(original) from None
        raise
    stream.close()
    pump.join()
    stage.join()
    if pump.error is not None:
        raise SourceFailed(pump.error)
    return StreamResult(counts["read"], counts["written"], counts["batches"], timings)


class _TransformStage(threading.Thread):
    """Parse, transform and write CSV in a thread of its own, at most QUEUE_DEPTH batches ahead of
    the COPY: Arrow's parsing and CSV writing and the COPY's sends release the GIL, so a task's
    Python (a hash per value) overlaps them instead of adding to them. Memory stays bounded."""

    QUEUE_DEPTH = 2

    def __init__(self, open_reader, chain: TaskChain, batch_size: int, timings: dict[str, float],
                 between_boundaries: Callable[[int], None]) -> None:
        super().__init__(name="etl-transform-stage", daemon=True)
        self._open_reader, self._chain, self._batch_size = open_reader, chain, batch_size
        self._timings, self._between_boundaries = timings, between_boundaries
        self._queue: queue.Queue = queue.Queue(maxsize=self.QUEUE_DEPTH)
        self._stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            batch_number = 0
            for batch in _batches(self._open_reader(), self._batch_size, self._timings, self._between_boundaries):
                batch_number += 1
                out = self._chain.apply(batch, batch_number)
                self._put((batch.num_rows, out.num_rows, _csv(out, self._timings)))
            for out in self._chain.finish(batch_number):
                for piece in _slices(out, self._batch_size):
                    self._put((0, piece.num_rows, _csv(piece, self._timings)))
        except _Stopped:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the COPY's thread, which raises it
            self.error = error
        try:
            self._put(None)
        except _Stopped:
            pass

    def next_item(self):
        """(rows read, rows written, CSV bytes) of the next batch; None at the end; the stage's error."""
        item = self._queue.get()
        if item is None and self.error is not None:
            raise self.error
        return item

    def stop(self) -> None:
        self._stopped.set()

    def _put(self, item) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()


class _Stopped(Exception):
    """The COPY side gave up (cancel, error): the stage stops producing."""


def _use_system_allocator() -> None:
    """Arrow's default allocator (mimalloc) keeps freed batches for reuse: measured on 1M films, the
    runner's peak RSS grew 36 MB more than with the system allocator, at the same speed. Set where
    it is first needed rather than at import (importing must not change a process)."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def _unwrap(error: BaseException) -> BaseException:
    """Arrow re-raises a Python read()'s exception inside its own; the source's failure is what counts."""
    cause = error
    while cause is not None:
        if isinstance(cause, (SourceFailed, LoadError)):
            return cause
        cause = cause.__cause__ or cause.__context__
    return error


def _batches(reader, batch_size: int, timings: dict[str, float],
             between_boundaries: Callable[[int], None]) -> Iterator[pa.RecordBatch]:
    """Arrow's blocks (sized in bytes) re-cut into batches of exactly batch_size rows (the last shorter).

    A slow source fills a batch slowly: rows that arrived are reported within PROGRESS_S anyway."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    reported_at = time.monotonic()
    while True:
        started = time.perf_counter()
        try:
            block = reader.read_next_batch()
        except StopIteration:
            timings["parse_s"] += time.perf_counter() - started
            break
        timings["parse_s"] += time.perf_counter() - started
        pending.append(block)
        pending_rows += block.num_rows
        if pending_rows < batch_size:
            if time.monotonic() - reported_at >= PROGRESS_S:
                reported_at = time.monotonic()
                between_boundaries(pending_rows)
            continue
        table = pa.Table.from_batches(pending).combine_chunks()
        whole = pending_rows - pending_rows % batch_size
        for offset in range(0, whole, batch_size):
            yield _one_batch(table.slice(offset, batch_size))
        rest = table.slice(whole)
        pending, pending_rows = ([_one_batch(rest)] if rest.num_rows else []), rest.num_rows
    if pending_rows:
        yield _one_batch(pa.Table.from_batches(pending).combine_chunks())


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.to_batches()
    return batches[0] if len(batches) == 1 else table.combine_chunks().to_batches()[0]


def _slices(batch: pa.RecordBatch, size: int) -> Iterator[pa.RecordBatch]:
    for offset in range(0, batch.num_rows, size):
        yield batch.slice(offset, size)


_WRITE_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def _csv(batch: pa.RecordBatch, timings: dict[str, float]) -> bytes:
    started = time.perf_counter()
    sink = io.BytesIO()
    if batch.num_rows:
        pa_csv.write_csv(batch, sink, write_options=_WRITE_OPTIONS)
    timings["write_s"] += time.perf_counter() - started
    return sink.getvalue()


def fill_shadow_by_python(load, source, source_cursor, target_cursor, hooks, shadow, described: list[SourceColumn],
                          chain: TaskChain, progress) -> tuple[int, int]:
    """FullLoad's PYTHON branch: the stream into the shadow; returns (rows read, rows written).

    Per-task rows and timings go to the run's details whether the stream ends well or not."""
    from psycopg2 import sql

    from .source import source_error

    columns = sql.SQL(", ").join(sql.Identifier(name) for name in chain.output_columns)
    copy_in = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(shadow.identifier, columns).as_string(target_cursor)
    copy_out = f"COPY (\n{load.query}\n) TO STDOUT (FORMAT csv)"
    result = None
    try:
        result = transform_stream(
            source_cursor, copy_out, described, target_cursor, copy_in, chain, load.batch_size,
            on_boundary=hooks.on_batch, cancel_source=source.cancel, on_progress=progress,
        )
    except SourceFailed as failure:
        raise source_error(failure.error) from None
    finally:
        details = {"tasks": chain.report()}
        if result is not None:
            details["stream"] = {"batches": result.batches,
                                 **{key: round(value, 4) for key, value in result.timings.items()}}
        reporter = getattr(hooks, "report", None)
        if reporter is not None:
            reporter(details, False)
    source_cursor.execute("COMMIT")
    return result.rows_read, result.rows_written
