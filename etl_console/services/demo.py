"""The demo world: warehouse data plus the contract's two example pipelines."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..config import Config
from ..db.engine import Database
from ..db.models import Pipeline
from ..warehouse.demo import PIPELINES, load_demo_data
from .pipelines import create_pipeline


@dataclass
class DemoSummary:
    films: int
    ratings: int
    regenerated: bool
    seconds: float
    pipelines: list[str]
    source_connection: str | None = None  # the connection the demo's pipelines read (embedded server only)


def ensure_demo(database: Database, config: Config, films: int | None, ratings: int | None) -> DemoSummary:
    """Sizes given are exact; None keeps what is there if it is at least the default size."""
    report = load_demo_data(database.warehouse_dsn, films, ratings)
    source_connection = None
    if database.owns_source_login:
        database.provision_source_login(config)  # the demo's new schemas and tables become readable
        # The server is ours (embedded): the sources also get a "production" database of their own.
        from .demo_sources import ensure_production_source

        source_connection = ensure_production_source(database, config, films, ratings)
    allowed = set(config.allowed_target_tables) | {p["target_table"] for p in PIPELINES}
    with database.sessions.begin() as session:
        existing = set(session.scalars(select(Pipeline.name)))
        for spec in PIPELINES:
            if spec["name"] not in existing:
                create_pipeline(session, allowed, {**spec, "source_connection": source_connection})
    return DemoSummary(report.films, report.ratings, report.regenerated, report.seconds, [p["name"] for p in PIPELINES],
                       source_connection)
