"""Alert latency: from an event's commit to its arrival at a webhook receiver on loopback.

    python -P bench/alert_latency.py [--events 100] [--url URL]

A pipeline whose 10-row source fails (division by zero) is subscribed to run.failed on a webhook
channel pointing at a real HTTP receiver on 127.0.0.1 (http.server, answering 204). Its runs are
requested one after another (each waits for the previous alert, then 0-200 ms of idleness); each
failure is one event. Latency = the receiver's clock at arrival minus the run's finished_at (stamped
by PostgreSQL in the transaction that wrote the outbox row; same host, so one clock). The runner that
ran the run wakes its own alert sender, which claims the row (SKIP LOCKED), signs and POSTs it.
Prints median, p99 and max. Without --url it uses the embedded server under ./.etl-bench.
The figures are from a shared 2-core machine: read them as medians of noisy runs.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

FAILING = ("SELECT md5('alert' || i)::uuid AS film_id, 'film ' || i AS title, (1 / (i - i))::float8 AS rating "
           "FROM generate_series(1, 10) AS i")
SECRET = "bench-secret-0123456789abcdef"


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with receiver.arrived:
                    receiver.arrivals.setdefault(self.headers["X-Etl-Delivery"], now)
                    receiver.arrived.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key: str, timeout: float = 30) -> float:
        with self.arrived:
            if not self.arrived.wait_for(lambda: key in self.arrivals, timeout):
                raise RuntimeError(f"{key} did not arrive within {timeout} s")
            return self.arrivals[key]


def database_url(url: str | None) -> str:
    from etl_console.db.engine import sqlalchemy_url

    if url is None:
        from etl_console.db.embedded import start_embedded

        url = start_embedded(os.path.abspath(".etl-bench"))
    return sqlalchemy_url(url)


def measure(url: str, events: int) -> list[float]:
    from sqlalchemy import text

    from etl_console import create_app
    from etl_console.serving import start_runner_thread

    app = create_app(dict(database_url=url, reconcile_after_run=False))
    start_runner_thread(app)
    receiver = Receiver()
    client = app.test_client()
    engine = app.extensions["etl"].database.engine
    latencies = []
    try:
        tag = f"{os.getpid()}_{random.randrange(1 << 30)}"
        pipeline = client.post("/api/v1/pipelines/", json={
            "name": f"alert_latency_{tag}", "target_table": "analytics.film_dim", "source_query": FAILING}).get_json()
        channel = client.post("/api/v1/alert-channels/", json={
            "name": f"bench_{tag}", "kind": "webhook", "url": receiver.url, "secret": SECRET}).get_json()
        assert client.put(f"/api/v1/pipelines/{pipeline['id']}/alerts", json={
            "channels": [{"channel_id": channel["id"], "events": ["run.failed"]}]}).status_code == 200
        for _ in range(events):
            time.sleep(random.uniform(0, 0.2))
            run = client.post(f"/api/v1/pipelines/{pipeline['id']}/run")
            assert run.status_code == 200, run.get_data(as_text=True)
            with engine.connect() as conn:
                run_id = conn.execute(text("SELECT id FROM etl_pipeline_runs WHERE pipeline_id = :p "
                                           "ORDER BY started_at DESC LIMIT 1"), {"p": pipeline["id"]}).scalar_one()
            arrived = receiver.wait(f"run.failed:{run_id}")
            with engine.connect() as conn:
                finished = conn.execute(text("SELECT extract(epoch FROM finished_at) FROM etl_pipeline_runs "
                                             "WHERE id = :r"), {"r": run_id}).scalar_one()
            latencies.append(arrived - float(finished))
        client.delete(f"/api/v1/alert-channels/{channel['id']}")
    finally:
        receiver.server.shutdown()
        runner = app.extensions["etl"].runner
        if runner is not None:
            runner.stop()
        app.extensions["etl"].database.dispose()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--url")
    args = parser.parse_args()
    url = database_url(args.url)
    from etl_console.config import Config
    from etl_console.db.engine import Database
    from etl_console.db.migrate import upgrade
    from etl_console.services.demo import ensure_demo

    config = Config.from_env(database_url=url)
    database = Database.connect(config)
    upgrade(database.engine)
    ensure_demo(database, config, None, None)
    database.dispose()

    values = sorted(measure(url, args.events))
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    print(f"event (run finished_at, outbox row committed) to webhook receiver, {len(values)} run.failed events:")
    print(f"  median {statistics.median(values) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
          f"max {values[-1] * 1000:7.1f} ms  min {values[0] * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
