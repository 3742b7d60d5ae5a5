"""The tasks panel of a PYTHON pipeline's page: the ordered transforms every batch goes through, and
an editor (add an installed kind, edit a task's config, move it up or down, remove it). Every change
is a plain POST form with its CSRF token that htmx may send instead; either way the whole list is
saved through the same service as PUT /api/v1/pipelines/{id}/tasks, so the same checks (config
schema, columns against the source and the target) refuse it with the same message, shown inline."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import flask

from ..api.context import current_etl, db_session, source_access
from ..services import tasks as task_service
from ..services.errors import InvalidPipeline, InvalidSourceQuery, PipelineBusy, SourceUnreachable
from . import views
from .views import bp


@dataclass
class TasksPanel:
    pipeline_id: uuid.UUID
    pipeline_type: str
    tasks: list[dict]
    error: str | None = None
    saved: str | None = None  # what the last change did, for the notice
    typed: dict[str, str] = field(default_factory=dict)  # refused config text by form key ("new" or a position)

    def config_text(self, key, config: dict | None = None) -> str:
        if str(key) in self.typed:
            return self.typed[str(key)]
        return json.dumps(config or {}, indent=1, ensure_ascii=False)

    @property
    def transforms(self) -> list[dict]:
        from ..transforms import describe_transforms

        return describe_transforms()


def _panel(session, pid: uuid.UUID, **extra) -> TasksPanel:
    from ..services.pipelines import get_pipeline

    pipeline = get_pipeline(session, pid)
    return TasksPanel(pid, pipeline.type, task_service.task_list(session, pid), **extra)


@bp.app_context_processor
def _panel_function() -> dict:
    def tasks_panel_for(pipeline_id) -> TasksPanel:
        shown = flask.g.get("tasks_panel")
        if shown is not None and shown.pipeline_id == pipeline_id:
            return shown
        return _panel(db_session(), pipeline_id)

    return {"tasks_panel_for": tasks_panel_for}


@bp.get("/pipelines/<pipeline_id>/tasks")
def tasks_panel(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    return flask.render_template("console/_tasks.html", tasks_panel=_panel(db_session(), pid))


@bp.post("/pipelines/<pipeline_id>/tasks")
def save_tasks(pipeline_id: str):
    pid = views._pipeline_uuid(pipeline_id)
    session = db_session()
    form = flask.request.form
    action, key = form.get("action", ""), form.get("position", "new")
    status = 200
    try:
        tasks, done = _changed(task_service.list_tasks(session, pid), action, key, form)
        task_service.replace_tasks(session, pid, tasks, source_access=source_access(),
                                   default_source_dsn=current_etl().database.source_dsn)
        panel = _panel(session, pid, saved=done)
    except (ValueError, InvalidPipeline, InvalidSourceQuery, PipelineBusy, SourceUnreachable) as error:
        status = 409 if isinstance(error, PipelineBusy) else 400
        typed = {key: form.get("config", "")} if action in ("add", "save") else {}
        panel = _panel(session, pid, error=str(error), typed=typed)
    if views._htmx():
        return views._inline(flask.render_template("console/_tasks.html", tasks_panel=panel), status)
    if panel.error:
        flask.g.tasks_panel = panel
        return views._pipeline_page(pid, status=status)
    return flask.redirect(flask.url_for(".pipeline", pipeline_id=pid) + "#tasks", 303)


def _changed(current: list[dict], action: str, key: str, form) -> tuple[list[dict], str]:
    """The whole new list for one editor action, and what to say once it is saved."""
    tasks = [{"kind": task["kind"], "config": task["config"]} for task in current]
    if action == "add":
        kind = form.get("kind", "").strip()
        if not kind:
            raise ValueError("choose a transform to add")
        tasks.append({"kind": kind, "config": _config(form.get("config", ""), f"task {len(tasks) + 1} ({kind})")})
        return tasks, f"Task {len(tasks)} ({kind}) added."
    try:
        index = int(key) - 1
        task = tasks[index]
        if index < 0:
            raise IndexError
    except (ValueError, IndexError):
        raise ValueError(f"there is no task {key}; the list changed meanwhile, reload the page") from None
    if action == "save":
        task["config"] = _config(form.get("config", ""), f"task {index + 1} ({task['kind']})")
        return tasks, f"Task {index + 1} ({task['kind']}) saved."
    if action == "remove":
        del tasks[index]
        return tasks, f"Task {index + 1} ({task['kind']}) removed."
    if action in ("up", "down"):
        other = index - 1 if action == "up" else index + 1
        if not 0 <= other < len(tasks):
            raise ValueError(f"task {index + 1} is already {'first' if action == 'up' else 'last'}")
        tasks[index], tasks[other] = tasks[other], tasks[index]
        return tasks, f"Task {task['kind']} moved to position {other + 1}."
    raise ValueError(f"unknown action {action!r}")


def _config(text: str, task: str) -> dict:
    try:
        config = json.loads(text.strip() or "{}")
    except ValueError as error:
        raise ValueError(f"{task}: the config is not JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{task}: the config must be a JSON object, like {{\"columns\": [\"title\"]}}")
    return config
