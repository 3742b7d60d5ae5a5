"""gunicorn, started from `etl-console serve` with the same settings gunicorn.conf.py documents."""
from __future__ import annotations

import atexit
import socket
import sys

from gunicorn.app.base import BaseApplication

from .extensions import etl_of


class _EtlGunicorn(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return web_process_app()


def web_process_app():
    """The app a serving process runs (a gunicorn worker, wsgi.py): create_app, then what serving
    needs and create_app must not do: refuse a schema this code does not match, and start the runner
    thread when ETL_RUNNER=thread. Migrating is `serve`'s job, once, before the workers fork."""
    from . import create_app
    from .db.migrate import require_current_schema

    app = create_app()
    state = etl_of(app)
    require_current_schema(state.database.engine)
    if state.config.runner == "thread":
        start_runner_thread(app)
    return app


def start_runner_thread(app, name: str = "web"):
    """A runner inside this web process, stopped at exit."""
    from .runner.runner import Runner

    state = etl_of(app)
    state.runner = Runner(state.database, state.config, name=name).start()
    atexit.register(state.runner.stop)
    return state.runner


def listener_addresses(listeners) -> list[str]:
    """What gunicorn really bound, whatever said it (ETL_BIND, -b, GUNICORN_CMD_ARGS, fd://N)."""
    addresses = []
    for listener in listeners:
        sock = getattr(listener, "sock", listener)
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            addresses.append(f"unix:{name if isinstance(name, str) else name.decode(errors='replace')}")
        elif sock.family == socket.AF_INET6:
            addresses.append(f"[{name[0]}]:{name[1]}")
        else:
            addresses.append(f"{name[0]}:{name[1]}")
    return addresses


def refuse_open_listeners(server) -> None:
    """gunicorn's when_ready hook: sockets are bound, no worker (and no app) exists yet. An open
    (no auth) service on a non-loopback socket stops here, however its address was given."""
    from .auth import check_bind
    from .config import Config

    refusal = check_bind(listener_addresses(server.LISTENERS), Config.from_env())
    if refusal:
        sys.stderr.write(f"etl-console: {refusal}\n")
        sys.stderr.flush()
        raise SystemExit(2)


def serve_gunicorn(bind: str, workers: int, threads: int) -> None:
    _EtlGunicorn(
        {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "timeout": 60,
            "graceful_timeout": 30,
            "accesslog": "-",
            "when_ready": refuse_open_listeners,
        }
    ).run()
