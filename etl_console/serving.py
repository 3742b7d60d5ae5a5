"""gunicorn, started from `etl-console serve` with the same settings gunicorn.conf.py documents."""
from __future__ import annotations

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
        }
    ).run()
