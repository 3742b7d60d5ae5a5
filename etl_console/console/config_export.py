"""The list page's Export: the YAML document (etl-console export) of the pipelines the page shows,
with the same filters and page as the list's own URL."""
from __future__ import annotations

import flask

from ..api.context import db_session
from ..services import config as config_service
from ..services import pipeline_list
from .list_page import _cursor, _filters, _limit
from .views import bp


@bp.get("/pipelines/export.yaml")
def export_pipelines():
    args = flask.request.args
    after, before = _cursor(args)
    session = db_session()
    page = pipeline_list.list_page(session, _filters(args), after=after, before=before, limit=_limit(args))
    document = config_service.export_document(session, [summary.name for summary in page.pipelines])
    return flask.Response(config_service.to_yaml(document), mimetype="application/yaml",
                          headers={"Content-Disposition": 'attachment; filename="etl.yaml"'})
