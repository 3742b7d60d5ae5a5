"""The quality gates panel of the pipeline page: the checks a full load must pass, and a form to
change them (GET/PUT /api/v1/pipelines/{id}/checks in the console). Its routes live on the console
blueprint; the page template asks for the panel through the `checks_panel_for` template function,
so a form post that is refused without JavaScript can show its error on the re-rendered page."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import flask

from ..api.context import db_session
from ..services import checks as check_service
from ..services.errors import InvalidPipeline, InvalidSourceQuery, PipelineBusy
from . import views
from .views import bp


@dataclass
class ChecksPanel:
    pipeline_id: uuid.UUID
    checks: dict
    error: str | None = None
    saved: bool = False
    typed: dict = field(default_factory=dict)  # the refused form's values, shown back

    def value(self, name: str) -> str:
        """What a form box shows: what was typed when refused, else the saved checks as text."""
        if name in self.typed:
            return self.typed[name]
        checks = self.checks
        if name in ("min_rows", "max_drop_percent"):
            number = checks.get(name)
            return "" if number is None else f"{number:g}"
        if name == "not_null_columns":
            return ", ".join(checks.get(name) or [])
        if name == "unique_keys":
            return "\n".join(", ".join(key) for key in checks.get(name) or [])
        return ""


@bp.app_context_processor
def _panel_function() -> dict:
    def checks_panel_for(pipeline_id) -> ChecksPanel:
        shown = flask.g.get("checks_panel")
        if shown is not None and shown.pipeline_id == pipeline_id:
            return shown
        return ChecksPanel(pipeline_id, check_service.checks_of(db_session(), pipeline_id))

    return {"checks_panel_for": checks_panel_for}


@bp.get("/pipelines/<pipeline_id>/checks")
def checks_panel(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    return flask.render_template("console/_checks.html", checks_panel=ChecksPanel(pid, check_service.get_checks(db_session(), pid)))


@bp.post("/pipelines/<pipeline_id>/checks")
def save_checks(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    session = db_session()
    form = flask.request.form
    typed = {name: form.get(name, "") for name in ("min_rows", "max_drop_percent", "not_null_columns", "unique_keys")}
    status = 200
    try:
        checks = _parse(form)
        panel = ChecksPanel(pid, check_service.set_checks(session, pid, checks), saved=True)
    except (ValueError, InvalidPipeline, InvalidSourceQuery, PipelineBusy) as error:
        status = 409 if isinstance(error, PipelineBusy) else 400
        panel = ChecksPanel(pid, check_service.get_checks(session, pid), error=str(error), typed=typed)
        panel.checks = {**panel.checks, "allow_empty": form.get("allow_empty") == "on",
                        "assertions": _assertions(form)}
    if views._htmx():
        return views._inline(flask.render_template("console/_checks.html", checks_panel=panel), status)
    if panel.error:
        flask.g.checks_panel = panel
        return views._pipeline_page(pid, status=status)
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pid) + "#checks", 303)


def _parse(form) -> dict:
    def number(name: str, kind):
        text = form.get(name, "").strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"{name.replace('_', ' ')} must be a number, not {text!r}") from None

    return {
        "min_rows": number("min_rows", int),
        "max_drop_percent": number("max_drop_percent", float),
        "allow_empty": form.get("allow_empty") == "on",
        "not_null_columns": _names(form.get("not_null_columns", "")),
        "unique_keys": [_names(line) for line in form.get("unique_keys", "").splitlines() if line.strip()],
        "assertions": _assertions(form),
    }


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _assertions(form) -> list[dict]:
    """Name and SQL boxes come in pairs; a pair left empty (the spare one) is not an assertion."""
    pairs = zip(form.getlist("assertion_name"), form.getlist("assertion_sql"))
    return [{"name": name.strip(), "sql": sql.strip()} for name, sql in pairs if name.strip() or sql.strip()]
