"""Stream a query's rows from one connection into a COPY on another, counting rows on the way.

COPY TO STDOUT writes into an OS pipe from a pump thread; COPY FROM STDIN reads the other end in
large chunks. Python never touches individual rows: rows are counted with bytes.count(b"\\n"),
which is exact for COPY's text format (every row ends in one newline; newlines inside values are
escaped). Memory stays at the pipe's and the chunk's size whatever the row count.

Progress for slow sources: the pump's buffered writer is also flushed every PROGRESS_S by a small
timer, so rows that trickle in reach the reader (and its row count) within that time instead of
waiting for 256 KiB; a fast source fills the buffer long before the timer and is unaffected. The
server itself sends COPY data in 8 KiB messages, though, so a source yielding a few rows a second
would still look stalled: when no rows arrived for PROBE_AFTER_S, source_rows() (the source
backend's own counter, pg_stat_progress_copy) is asked how many rows the query has produced.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

CHUNK_BYTES = 1 << 18
PROGRESS_S = 0.25  # rows that arrived are counted, and reported, within about this long
PROBE_AFTER_S = 0.5  # a stream this quiet is asked for the source's own row count


class SourceFailed(Exception):
    """The source side of the pipe failed; carries the original error."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _CountingReader:
    """The file object COPY FROM reads; calls on_boundary each time a batch boundary is passed."""

    def __init__(self, stream, batch_size: int, on_boundary: Callable[[int], None], pump,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self._stream = stream
        self._batch_size = batch_size
        self._next_boundary = batch_size
        self._on_boundary = on_boundary
        self._on_progress = on_progress
        self._reported_at = time.monotonic()
        self._pump = pump
        self.rows = 0
        self.source_rows = 0  # what the source says it produced (ahead of self.rows by its send buffer)
        self.error: BaseException | None = None  # psycopg2 wraps errors raised in read(); keep ours

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        try:
            return self._read(size)
        except BaseException as error:
            self.error = error
            raise

    def _read(self, size: int) -> bytes:
        chunk = self._stream.read1(size)  # what the pipe holds now: a slow source still reports progress
        if not chunk:
            self._pump.raise_if_failed()  # EOF after a source error must not look like success
            return chunk
        self.rows += chunk.count(b"\n")
        if self.rows >= self._next_boundary:
            boundary = self.rows - self.rows % self._batch_size
            self._next_boundary = boundary + self._batch_size
            self._on_boundary(boundary)
            self._reported_at = time.monotonic()
        elif self._on_progress is not None and time.monotonic() - self._reported_at >= PROGRESS_S:
            self._reported_at = time.monotonic()
            self._on_progress(max(self.rows, self.source_rows), self.rows)
        return chunk

    readline = read  # psycopg2 only calls read(); readline keeps file-likeness checks happy


class _Pump(threading.Thread):
    def __init__(self, source_cursor, copy_out_sql: str, write_fd: int) -> None:
        super().__init__(name="etl-copy-pump", daemon=True)
        self._cursor = source_cursor
        self._sql = copy_out_sql
        self._write_fd = write_fd
        self.error: BaseException | None = None

    def run(self) -> None:
        writer = os.fdopen(self._write_fd, "wb", buffering=CHUNK_BYTES)
        done = threading.Event()
        flusher = threading.Thread(target=_flush_every, args=(writer, done), name="etl-copy-flush", daemon=True)
        flusher.start()
        try:
            self._cursor.copy_expert(self._sql, writer)
        except BaseException as error:  # noqa: BLE001 - handed to the reading side
            self.error = error
        finally:
            done.set()
            flusher.join()
            try:
                writer.close()
            except OSError:
                pass  # the reader went away first (cancel or target error)

    def raise_if_failed(self) -> None:
        self.join()
        if self.error is not None:
            raise SourceFailed(self.error)


def _probe_source(reader: _CountingReader, source_rows: Callable[[], int | None], done: threading.Event) -> None:
    while not done.wait(PROGRESS_S):
        if time.monotonic() - reader._reported_at < PROBE_AFTER_S:
            continue  # rows are flowing: the reader reports them itself
        try:
            produced = source_rows()
        except Exception:  # noqa: BLE001 - progress is best effort; the load must not care
            return
        if produced is not None and produced > max(reader.rows, reader.source_rows):
            reader.source_rows = produced
            reader._reported_at = time.monotonic()
            reader._on_progress(produced, reader.rows)


def _flush_every(writer, done: threading.Event) -> None:
    """BufferedWriter serialises write() and flush() on its own lock, so this is safe beside the pump."""
    while not done.wait(PROGRESS_S):
        try:
            writer.flush()
        except (OSError, ValueError):  # the reader closed the pipe, or the writer is closed
            return


def copy_pipe(
    source_cursor,
    copy_out_sql: str,
    target_cursor,
    copy_in_sql: str,
    batch_size: int,
    on_boundary: Callable[[int], None],
    cancel_source: Callable[[], None],
    on_progress: Callable[[int, int], None] | None = None,
    source_rows: Callable[[], int | None] | None = None,
) -> int:
    """Run the pipe to the end and return the rows COPY FROM reports; re-raises either side's error."""
    read_fd, write_fd = os.pipe()
    pump = _Pump(source_cursor, copy_out_sql, write_fd)
    stream = os.fdopen(read_fd, "rb", buffering=CHUNK_BYTES)
    reader = _CountingReader(stream, batch_size, on_boundary, pump, on_progress)
    pump.start()
    probing = threading.Event()
    if on_progress is not None and source_rows is not None:
        threading.Thread(target=_probe_source, args=(reader, source_rows, probing), name="etl-copy-probe",
                         daemon=True).start()
    try:
        target_cursor.copy_expert(copy_in_sql, reader, size=CHUNK_BYTES)
    except BaseException as error:
        probing.set()
        cancel_source()  # stop the server-side query, not just our pipe
        stream.close()  # unblocks a pump stuck writing into a full pipe
        pump.join()
        if reader.error is not None and reader.error is not error:
            raise reader.error from None
        raise
    probing.set()
    stream.close()
    pump.raise_if_failed()
    return target_cursor.rowcount if target_cursor.rowcount >= 0 else reader.rows
