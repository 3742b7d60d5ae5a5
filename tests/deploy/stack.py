"""The production stack on loopback: gunicorn (gunicorn.conf.py, wsgi.py), `etl-console worker`, and
Debian's nginx running deploy/nginx.conf with its addresses and paths substituted.

Every process gets its own session (process group) and is stopped by its pid at teardown; every
wait is bounded in time.
"""
from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPERATOR_TOKEN = "op-token-0123456789abcdef-operator"
VIEWER_TOKEN = "view-token-0123456789abcdef-viewer"
CONSOLE_USER = "ops"
CONSOLE_PASSWORD = "correct horse battery"


@contextlib.contextmanager
def scratch_database(server_url: str, films: int = 2000, ratings: int = 10000):
    """A database of its own on the test server, with the demo world; dropped afterwards.

    The stack's `etl-console worker` claims any queued run in its database, so it must not share one
    with in-process tests that expect their own runner to execute (and count) their runs.
    """
    import psycopg2
    from sqlalchemy.engine import make_url

    from etl_console.db.engine import libpq_dsn
    from etl_console.warehouse.demo import load_demo_data

    name = f"etl_stack_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(libpq_dsn(server_url))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        load_demo_data(libpq_dsn(url), films, ratings)
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environ(**extra: str) -> dict[str, str]:
    """The test process's environment without ETL_* and PROMETHEUS_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETL_", "PROMETHEUS_", "GUNICORN_"))}
    env.update(extra)
    return env


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # noqa: BLE001 - keep polling until the deadline
            last = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last!r})")


def http_status(url: str, timeout: float = 2.0) -> int:
    context = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)  # its own session: only its children
                self.popen.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(name: str, argv: list[str], env: dict, workdir: Path, cwd: Path = REPO) -> Proc:
    log = workdir / f"{name}.out"
    handle = open(log, "wb")
    popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return Proc(name, popen, log)


def make_certificate(workdir: Path) -> tuple[Path, Path] | None:
    openssl = shutil.which("openssl")
    if not openssl:
        return None
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def nginx_config(workdir: Path, upstream_port: int, http_port: int, https_port: int | None, tls) -> str:
    """deploy/nginx.conf, with only its machine-specific lines replaced (each must still exist)."""
    text = (REPO / "deploy" / "nginx.conf").read_text()
    listen = f"listen 127.0.0.1:{http_port};"
    if https_port and tls:
        listen += f"\n        listen 127.0.0.1:{https_port} ssl;\n        ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};"
    temp_paths = "".join(
        f"\n    {kind}_temp_path {workdir / ('nginx-' + kind)};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    replacements = {
        "user nginx;": user,
        "pid /var/run/nginx.pid;": f"pid {workdir / 'nginx.pid'};",
        "error_log /dev/stderr warn;": f"error_log {workdir / 'nginx-error.log'} warn;",
        "access_log /dev/stdout etl;": f"access_log {workdir / 'nginx-access.log'} etl;",
        "server app:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": listen,
        "alias /srv/etl-console/static/;": f"alias {REPO / 'static'}/;",
        "http {": "http {" + temp_paths,
    }
    if not Path("/etc/nginx/mime.types").exists():
        replacements["include /etc/nginx/mime.types;"] = "types { text/css css; application/javascript js; text/html html; }"
    for old, new in replacements.items():
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}: update tests/deploy/stack.py"
        text = text.replace(old, new)
    return text


@dataclass
class Stack:
    workdir: Path
    database_url: str
    gunicorn_port: int
    http_port: int
    https_port: int | None
    procs: dict[str, Proc] = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        from etl_console.db.engine import libpq_dsn

        return libpq_dsn(self.database_url)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str | None:
        return f"https://127.0.0.1:{self.https_port}" if self.https_port else None

    @property
    def direct(self) -> str:
        return f"http://127.0.0.1:{self.gunicorn_port}"

    def file(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> dict[str, str]:
        names = ["gunicorn-access.log", "nginx-access.log", "nginx-error.log"]
        out = {name: self.file(name) for name in names}
        out.update({f"{p.name}.out": p.output() for p in self.procs.values()})
        return out

    def stop(self) -> None:
        for name in ("nginx", "worker", "gunicorn"):
            proc = self.procs.get(name)
            if proc is not None:
                proc.stop(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)


def start_stack(workdir: Path, database_url: str, *, workers: int = 4, max_requests: int = 0, with_nginx: bool = True,
                extra_env: dict | None = None) -> Stack:
    from werkzeug.security import generate_password_hash

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "prometheus").mkdir(exist_ok=True)
    stack = Stack(workdir, database_url, free_port(), free_port(), None)
    from tests.conftest import provision_test_source_login

    settings = dict(
        ETL_DATABASE_URL=database_url,
        ETL_SOURCE_URL=provision_test_source_login(database_url),
        ETL_BIND=f"127.0.0.1:{stack.gunicorn_port}",
        ETL_ALLOWED_HOSTS="localhost,127.0.0.1,etl.example.test",  # the names the tests reach it by
        ETL_WORKERS=str(workers),
        ETL_THREADS="8",
        ETL_MAX_REQUESTS=str(max_requests),
        ETL_MAX_REQUESTS_JITTER="0",
        ETL_ACCESS_LOG=str(workdir / "gunicorn-access.log"),
        ETL_LOG_FORMAT="json",
        ETL_API_TOKENS=f"{OPERATOR_TOKEN}:operator,{VIEWER_TOKEN}:viewer",
        ETL_CONSOLE_USERS=f"{CONSOLE_USER}={generate_password_hash(CONSOLE_PASSWORD)}",
        ETL_SECRET_KEY="deploy-test-secret",
        ETL_RUN_LEASE_S="30",
        ETL_HEARTBEAT_S="0.2",
        ETL_POLL_S="0.2",
        ETL_STATEMENT_TIMEOUT_S="60",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
    )
    env = clean_environ(**{**settings, **(extra_env or {})})
    stack.env = env
    # As a deployment does: migrate once, then start processes that only check the revision.
    subprocess.run([sys.executable, "-c", "from etl_console.cli import main; main(['db', 'upgrade'])"],
                   env=env, cwd=workdir, check=True, capture_output=True, timeout=120)
    try:
        stack.procs["gunicorn"] = start(
            "gunicorn", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], env, workdir
        )
        stack.procs["worker"] = start(
            "worker", [sys.executable, "-c", "from etl_console.cli import main; main(['worker'])"], env, workdir
        )
        _wait_alive(stack, "gunicorn", f"{stack.direct}/api/v1/health/live", 60)
        if with_nginx:
            nginx = nginx_binary()
            tls = make_certificate(workdir)
            if tls:
                stack.https_port = free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(nginx_config(workdir, stack.gunicorn_port, stack.http_port, stack.https_port, tls))
            stack.procs["nginx"] = start(
                "nginx", [nginx, "-e", str(workdir / "nginx-error.log"), "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
                env, workdir,
            )
            _wait_alive(stack, "nginx", f"{stack.http}/api/v1/health/live", 30)
        # Ready: the worker has heartbeated, so health answers 200.
        _wait_alive(stack, "worker", f"{stack.direct}/api/v1/health", 60)
    except BaseException:
        logs = stack.logs()
        stack.stop()
        tail = "\n".join(f"--- {name}\n{text[-3000:]}" for name, text in logs.items() if text)
        raise RuntimeError(f"the stack did not start:\n{tail}") from None
    return stack


def _wait_alive(stack: Stack, name: str, url: str, timeout: float) -> None:
    proc = stack.procs[name]

    def ready():
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.popen.returncode}")
        return http_status(url) == 200

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except RuntimeError:
            raise
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{name} not ready at {url} within {timeout} s")
