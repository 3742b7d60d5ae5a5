"""gunicorn, started from `etl-console serve` with the same settings gunicorn.conf.py documents."""
from __future__ import annotations

import socket
import sys

from gunicorn.app.base import BaseApplication


class _EtlGunicorn(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from . import create_app

        return create_app()


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
