"""GET /api/v1/health: readiness (database reachable, a runner alive); GET /api/v1/health/live: liveness.

Readiness answers 503 when the metadata database does not answer within 2 s, or when no runner
(`etl-console worker`, or a web worker with ETL_RUNNER=thread) has heartbeated in etl_runners within
ETL_RUN_LEASE_S: a service whose runs would never start is not healthy, even if its web side is.
It also answers 503 when user SQL would run as a login that is not least-privilege (`source_privileges`):
a superuser, or a member of a role that reads server files, signals backends or reads every table.
Liveness touches nothing but the process: use it for restart decisions, readiness for traffic.
"""
from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import text

from . import Blueprint
from .context import current_etl
from .schemas import HealthSchema

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Service health")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="The database is unreachable, no runner is alive, or user SQL would run with too many privileges")
    def get(self):
        """Health: 200 when the database answers and a runner heartbeated within the lease"""
        app_state = current_etl()
        checks = {"database": "ok", "runner": "ok", "source_privileges": "ok"}
        try:
            with app_state.database.engine.connect() as conn:
                conn.execute(text("SET LOCAL statement_timeout = '2s'"))
                live_runners = conn.execute(
                    text(
                        "SELECT count(*) FROM etl_runners "
                        "WHERE heartbeat_at > now() - make_interval(secs => :lease)"
                    ),
                    {"lease": app_state.config.run_lease_s},
                ).scalar_one()
            if not live_runners:
                checks["runner"] = "no runner has heartbeated within ETL_RUN_LEASE_S"
            if problems := app_state.source_check.problems():
                checks["source_privileges"] = "; ".join(problems)
        except Exception as error:  # noqa: BLE001 - any failure here means "not ready"
            checks["database"] = f"unreachable: {type(error).__name__}"
            checks["runner"] = "unknown"
            checks["source_privileges"] = "unknown"
        healthy = all(value == "ok" for value in checks.values())
        return {"status": "ok" if healthy else "unavailable", "checks": checks}, 200 if healthy else 503


@blp.route("/health/live")
class Liveness(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """Liveness: 200 while the process serves requests (no database access)"""
        return {"status": "ok", "checks": {}}
