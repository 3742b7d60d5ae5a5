"""Prometheus metrics at /metrics (prometheus-client).

Recorded in the process where things happen:
- `etl_runs_finished_total{status}`, `etl_run_duration_seconds{status}`, `etl_run_rows_written{status}`
  and `etl_runs_reaped_total` in whichever process runs the runner (a gunicorn worker with
  ETL_RUNNER=thread, or `etl-console worker`);
- `etl_http_request_duration_seconds{method,route,status}` in the web workers (route is the URL
  rule, e.g. `/api/v1/pipelines/<pipeline_id>`, so label values stay few).

Read from the database at scrape time, so they are true for all runners on all hosts:
- `etl_runs_active` (runs RUNNING now), `etl_runners_alive` (runners heartbeated within the lease),
  `etl_database_up`, `etl_alert_deliveries_pending`, `etl_alert_deliveries_failed`, and
  `etl_pipeline_stale{pipeline}` (pipelines with a freshness limit: 1 when past it).
- `etl_alert_delivery_failures_total` counts, in the sending process, deliveries given up on.

Several processes: set PROMETHEUS_MULTIPROC_DIR to an empty directory before the processes start
(gunicorn.conf.py does it for its workers when unset) and every process that shares the directory
is summed into one /metrics answer: gunicorn's workers and an `etl-console worker` on the same
host. A worker on another host (or in another container) serves its own registry on
ETL_METRICS_PORT instead; scrape both.

Nothing is created at import time: the metric objects are built on first use.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from types import SimpleNamespace

from .lifecycle import DeliveryStatus
from .extensions import etl_of

log = logging.getLogger(__name__)

RUN_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800)
RUN_ROWS_BUCKETS = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@functools.lru_cache(maxsize=None)
def _metrics() -> SimpleNamespace:
    if multiprocess_dir():
        os.makedirs(multiprocess_dir(), exist_ok=True)  # a worker container may have nobody else to make it
    from prometheus_client import Counter, Histogram, disable_created_metrics

    disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
    return SimpleNamespace(
        runs_finished=Counter("etl_runs_finished_total", "Runs that reached a final status", ["status"]),
        run_duration=Histogram(
            "etl_run_duration_seconds",
            "Run wall time from claim to final status",
            ["status"],
            buckets=RUN_DURATION_BUCKETS,
        ),
        run_rows=Histogram(
            "etl_run_rows_written", "Rows a run wrote to its target", ["status"], buckets=RUN_ROWS_BUCKETS
        ),
        runs_reaped=Counter(
            "etl_runs_reaped_total", "Runs marked FAILED because their worker stopped heartbeating (worker lost)"
        ),
        alert_failures=Counter(
            "etl_alert_delivery_failures_total",
            "Alert deliveries given up on (FAILED after ETL_ALERT_MAX_AGE_S of retries), by this process's sender",
        ),
        http_latency=Histogram(
            "etl_http_request_duration_seconds",
            "HTTP request latency in the app (time in Flask, per URL rule)",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
        ),
    )


# recording (called from the runner; each must be cheap and never raise) --------------------------
def run_finished(status: str, started_monotonic: float, rows_written: int) -> None:
    try:
        metrics = _metrics()
        metrics.runs_finished.labels(status).inc()
        metrics.run_duration.labels(status).observe(max(0.0, time.monotonic() - started_monotonic))
        metrics.run_rows.labels(status).observe(max(0, rows_written or 0))
    except Exception:  # noqa: BLE001 - metrics must never fail a run
        log.debug("could not record run metrics", exc_info=True)


def runs_reaped(count: int) -> None:
    if count:
        try:
            _metrics().runs_reaped.inc(count)
        except Exception:  # noqa: BLE001
            log.debug("could not record reaped runs", exc_info=True)


def alert_delivery_failed() -> None:
    try:
        _metrics().alert_failures.inc()
    except Exception:  # noqa: BLE001
        log.debug("could not record a failed alert delivery", exc_info=True)


# exposition -----------------------------------------------------------------------------------------
class DatabaseCollector:
    """Gauges read from the metadata database at scrape time (bounded by a 2 s statement timeout)."""

    def __init__(self, engine, lease_s: float) -> None:
        self.engine = engine
        self.lease_s = lease_s

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy import text

        from .db.models import RunStatus

        up = GaugeMetricFamily("etl_database_up", "1 when the metadata database answered this scrape")
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SET LOCAL statement_timeout = '2s'"))
                active = conn.execute(
                    text("SELECT count(*) FROM etl_pipeline_runs WHERE status = :running"), {"running": RunStatus.RUNNING}
                ).scalar_one()
                runners = conn.execute(
                    text("SELECT count(*) FROM etl_runners WHERE heartbeat_at > now() - make_interval(secs => :lease)"),
                    {"lease": self.lease_s},
                ).scalar_one()
                deliveries = dict(conn.execute(text(
                    f"SELECT status, count(*) FROM etl_alert_outbox WHERE status IN ('{DeliveryStatus.PENDING}', "
                    f"'{DeliveryStatus.SENDING}', '{DeliveryStatus.FAILED}') GROUP BY status")).all())
                from .services.freshness import stale_pipelines

                stale = stale_pipelines(conn)
        except Exception:  # noqa: BLE001 - a scrape must answer even when the database does not
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("etl_runs_active", "Runs RUNNING now, on all runners", value=active)
        yield GaugeMetricFamily(
            "etl_runners_alive", "Runners that heartbeated within ETL_RUN_LEASE_S", value=runners
        )
        yield GaugeMetricFamily("etl_alert_deliveries_pending", "Alert deliveries not yet delivered nor given up on",
                                value=deliveries.get(DeliveryStatus.PENDING, 0) + deliveries.get(DeliveryStatus.SENDING, 0))
        yield GaugeMetricFamily("etl_alert_deliveries_failed", "Alert deliveries given up on (in the outbox now)",
                                value=deliveries.get(DeliveryStatus.FAILED, 0))
        stale_family = GaugeMetricFamily("etl_pipeline_stale", "1 when a pipeline with a freshness limit is past it",
                                         labels=["pipeline"])
        for name, is_stale in stale:
            stale_family.add_metric([name], 1 if is_stale else 0)
        yield stale_family


def process_registry():
    """This process's metrics, or every process's when PROMETHEUS_MULTIPROC_DIR is set."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exposition(engine=None, lease_s: float = 30.0) -> tuple[bytes, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    _metrics()  # so that the families appear (empty) before the first run
    body = generate_latest(process_registry())
    if engine is not None:
        db_registry = CollectorRegistry()
        db_registry.register(DatabaseCollector(engine, lease_s))
        body += generate_latest(db_registry)
    return body, CONTENT_TYPE_LATEST


def init_metrics(app, config) -> None:
    """Time every request and serve /metrics (auth, when configured, is applied by etl_console.auth)."""
    import flask

    @app.url_value_preprocessor  # first thing on a request (see logs.init_logging)
    def _start_timer(_endpoint=None, _values=None):
        flask.g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = flask.g.pop("metrics_started", None)
        if started is not None and flask.request.path != "/metrics":
            rule = flask.request.url_rule
            route = rule.rule if rule is not None else "<unmatched>"
            try:
                _metrics().http_latency.labels(flask.request.method, route, str(response.status_code)).observe(
                    time.perf_counter() - started
                )
            except Exception:  # noqa: BLE001
                log.debug("could not record request latency", exc_info=True)
        return response

    def metrics_view():
        state = etl_of(app)
        body, content_type = exposition(state.database.engine, state.config.run_lease_s)
        return flask.Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])


def serve_worker_metrics(config) -> None:
    """`etl-console worker`: serve this process's metrics on ETL_METRICS_PORT (all interfaces; keep the
    port internal). With PROMETHEUS_MULTIPROC_DIR shared with gunicorn on one host it is not needed."""
    if not config.metrics_port:
        return
    from prometheus_client import start_http_server

    _metrics()  # also creates PROMETHEUS_MULTIPROC_DIR when set
    start_http_server(config.metrics_port, addr="0.0.0.0", registry=process_registry())
    log.info("worker metrics on port %s", config.metrics_port)


def cleanup_multiprocess_dir(path: str) -> int:
    """Remove the value files of processes that no longer exist (gunicorn.conf.py calls this at
    start). Files of live processes, e.g. an `etl-console worker` started earlier, are kept."""
    removed = 0
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return 0
    for name in names:
        if not name.endswith(".db"):
            continue
        try:
            pid = int(name[:-3].rsplit("_", 1)[1])
        except (IndexError, ValueError):
            continue
        if _pid_alive(pid):
            continue
        try:
            os.unlink(os.path.join(path, name))
            removed += 1
        except OSError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_process_dead(pid: int) -> None:
    """gunicorn's child_exit hook: drop a dead worker's live-gauge files (multiprocess mode)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
