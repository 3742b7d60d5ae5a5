"""gunicorn settings, all from environment variables: `gunicorn -c gunicorn.conf.py wsgi:app`.

| variable | default | meaning |
|---|---|---|
| ETL_BIND | 127.0.0.1:8000 | address(es), comma-separated; non-loopback needs auth (ETL_API_TOKENS / ETL_CONSOLE_USERS) |
| ETL_WORKERS | 2 (or WEB_CONCURRENCY) | worker processes |
| ETL_THREADS | 8 | threads per worker (gthread) |
| ETL_TIMEOUT | 60 | seconds a worker may be silent before the master kills it |
| ETL_GRACEFUL_TIMEOUT | 30 | seconds to finish requests in flight on restart/stop |
| ETL_KEEPALIVE | 75 | seconds an idle keep-alive connection stays open (longer than nginx's upstream keepalive_timeout) |
| ETL_ACCESS_LOG | - | access log file, "-" for stdout, "off" for none |
| ETL_ERROR_LOG | - | gunicorn's own log |
| ETL_MAX_REQUESTS | 1000 | recycle a worker after this many requests (0: never) |
| ETL_MAX_REQUESTS_JITTER | 100 | random extra requests, so workers do not recycle together |
| ETL_RUNNER | off (here) | where runs execute: see below |
| PROMETHEUS_MULTIPROC_DIR | a fresh temp dir | where the workers' metric files meet (see etl_console/metrics.py) |

Where runs execute: not in the web workers. This file defaults ETL_RUNNER to "off", and runs execute
in one or more `etl-console worker` processes next to gunicorn (any number, on any hosts: a run is
claimed in the database). So recycling a web worker (max_requests), a worker timeout or a redeploy
of the web tier never touches a run in flight. If you set ETL_RUNNER=thread anyway (a single-box
setup without a worker process), worker recycling is switched off here, because a recycled worker
cancels its runs (they end FAILED "worker shut down"; a killed one is reaped as "worker lost" after
ETL_RUN_LEASE_S): either way a run is recorded, but it does not finish.
"""
import os
import sys
import tempfile


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


os.environ.setdefault("ETL_RUNNER", "off")

bind = [b.strip() for b in os.environ.get("ETL_BIND", "127.0.0.1:8000").split(",") if b.strip()]
workers = _int("ETL_WORKERS", _int("WEB_CONCURRENCY", 2))
threads = _int("ETL_THREADS", 8)
worker_class = "gthread"
timeout = _int("ETL_TIMEOUT", 60)
graceful_timeout = _int("ETL_GRACEFUL_TIMEOUT", 30)
keepalive = _int("ETL_KEEPALIVE", 75)
max_requests = _int("ETL_MAX_REQUESTS", 1000)
max_requests_jitter = _int("ETL_MAX_REQUESTS_JITTER", 100)
_access_log = os.environ.get("ETL_ACCESS_LOG", "-")
accesslog = None if _access_log in ("", "off", "none") else _access_log
errorlog = os.environ.get("ETL_ERROR_LOG", "-")
loglevel = os.environ.get("ETL_LOG_LEVEL", "info").lower()
logger_class = "etl_console.logs.GunicornLogger"  # JSON lines when ETL_LOG_FORMAT=json
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s "%(a)s"'
# Request limits (gunicorn answers 400 past them; nginx in front has its own, smaller ones).
limit_request_line = _int("ETL_LIMIT_REQUEST_LINE", 8190)
limit_request_fields = 100
limit_request_field_size = _int("ETL_LIMIT_REQUEST_FIELD_SIZE", 8190)
# Heartbeat files on tmpfs: a worker blocked on a slow disk is not mistaken for a hung one.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
# ProxyFix in wsgi.py reads X-Forwarded-* (one proxy); gunicorn itself need not trust them.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# gunicorn's control socket (gunicornc) sits in $HOME by default: one path for every instance on the
# host, and HOME may be read-only in a container. Off; signals (HUP, TTIN/TTOU, TERM) do the same.
control_socket_disable = True

if os.environ.get("ETL_RUNNER") == "thread" and max_requests:
    sys.stderr.write(
        "gunicorn.conf.py: ETL_RUNNER=thread puts runs in the web workers; worker recycling "
        "(ETL_MAX_REQUESTS) is switched off so that it cannot cancel a run in flight\n"
    )
    max_requests = 0
    max_requests_jitter = 0

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Several workers: their metrics must meet in one directory or /metrics shows one worker's.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="etl-console-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from etl_console.auth import check_bind  # noqa: E402 - after the environment above is settled
from etl_console.config import Config  # noqa: E402

_refusal = check_bind(bind, Config.from_env())
if _refusal:
    sys.stderr.write(f"etl-console: {_refusal}\n")
    raise SystemExit(2)


def when_ready(server):
    # ETL_BIND was checked above; -b, GUNICORN_CMD_ARGS or fd://N can still bind elsewhere.
    from etl_console.serving import refuse_open_listeners

    refuse_open_listeners(server)


def on_starting(server):
    from etl_console.metrics import cleanup_multiprocess_dir

    cleanup_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    from etl_console.metrics import mark_process_dead

    mark_process_dead(worker.pid)
