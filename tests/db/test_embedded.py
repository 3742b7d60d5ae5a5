"""The embedded PostgreSQL: concurrent starts share one server, and data survives a restart."""
from __future__ import annotations

import signal
import subprocess
import sys

import psycopg2

from etl_console.db.engine import libpq_dsn

START = (
    "import sys; from etl_console.db.embedded import start_embedded; "
    "print(start_embedded(sys.argv[1]))"
)


def start_in_process(data_dir: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", START, data_dir], stdout=subprocess.PIPE, text=True)


def test_two_processes_starting_at_once_share_one_server_and_data_survives_restart(tmp_path):
    data_dir = str(tmp_path / "etl")
    first, second = start_in_process(data_dir), start_in_process(data_dir)
    urls = {first.communicate(timeout=120)[0].strip(), second.communicate(timeout=120)[0].strip()}
    assert first.returncode == 0 and second.returncode == 0
    # Both processes exited, so the last handle stopped the server; a new start joins the same data.
    assert len(urls) == 1
    url = urls.pop()
    assert "etl_console" in url

    restart = start_in_process(data_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", START + "; import time; sys.stdout.flush(); time.sleep(60)", data_dir],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        holder_url = holder.stdout.readline().strip()
        restart.communicate(timeout=120)
        conn = psycopg2.connect(libpq_dsn(holder_url))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (v int)")
            cur.execute("INSERT INTO kept VALUES (42)")
        conn.close()
    finally:
        holder.send_signal(signal.SIGINT)  # a clean exit: atexit stops the server
        holder.wait(60)

    again = start_in_process(data_dir)
    holder = subprocess.Popen(
        [sys.executable, "-c", START + "; import time; sys.stdout.flush(); time.sleep(60)", data_dir],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        conn = psycopg2.connect(libpq_dsn(holder.stdout.readline().strip()))
        with conn.cursor() as cur:
            cur.execute("SELECT v FROM kept")
            assert cur.fetchall() == [(42,)]
        conn.close()
        again.communicate(timeout=120)
    finally:
        holder.send_signal(signal.SIGINT)  # a clean exit: atexit stops the server
        holder.wait(60)
    pids = subprocess.run(["pgrep", "-f", f"postgres -D {tmp_path}"], capture_output=True, text=True).stdout.split()
    assert pids == []  # the last handle to exit stopped the server
