"""The operator console: server-rendered pages with htmx."""
from __future__ import annotations


def init_console(app) -> None:
    from .format import FILTERS
    from .views import bp

    app.register_blueprint(bp)
    app.jinja_env.filters.update(FILTERS)
