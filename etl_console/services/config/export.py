"""The current configuration as a document: stable and diff-friendly (keys sorted, objects by name,
no ids, no runtime state, no secrets: a password is only the name of the variable it is read from)."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy.orm import Session

from . import yaml_io
from .registry import ALERT_CHANNELS, CONNECTIONS, PIPELINES

DOCUMENT_VERSION = 1


def export_document(session: Session, names: Iterable[str] | None = None) -> dict:
    """Everything; with names, those pipelines and the connections and alert channels they use."""
    pipelines = PIPELINES.read_all(session, sorted(set(names)) if names is not None else None)
    if names is not None:
        used = sorted({item["source_connection"] for item in pipelines.values() if item["source_connection"]})
        connections = CONNECTIONS.read_all(session, used)
        channels = ALERT_CHANNELS.read_all(session, sorted(
            {subscription["channel"] for item in pipelines.values() for subscription in item["alerts"]}))
    else:
        connections, channels = CONNECTIONS.read_all(session), ALERT_CHANNELS.read_all(session)
    return {
        "version": DOCUMENT_VERSION,
        ALERT_CHANNELS.section: [ALERT_CHANNELS.exported(item) for _, item in sorted(channels.items())],
        CONNECTIONS.section: [CONNECTIONS.exported(item) for _, item in sorted(connections.items())],
        PIPELINES.section: [PIPELINES.exported(item) for _, item in sorted(pipelines.items())],
    }


def export_yaml(session: Session, names: Iterable[str] | None = None) -> str:
    return to_yaml(export_document(session, names))


def to_yaml(document: dict) -> str:
    return yaml_io.dump(document)
