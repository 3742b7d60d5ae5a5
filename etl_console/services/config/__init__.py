"""Pipelines as code: export the configuration as a YAML document, plan a document against the
database, apply it in one transaction. No HTTP here (the API and the CLI are thin over this)."""
from .apply import ConfigContext, apply, context_for, plan
from .errors import ConfigBusy, ConfigDocumentInvalid, ConfigRefused
from .export import export_document, export_yaml, to_yaml
from .plan import Plan

export = export_yaml  # export(session, names=None) -> the YAML text

__all__ = ["ConfigBusy", "ConfigContext", "ConfigDocumentInvalid", "ConfigRefused", "Plan", "apply", "context_for",
           "export", "export_document", "export_yaml", "plan", "to_yaml"]
