"""Why a configuration document is refused. Subclasses of the pipeline errors, so the web layer's one
mapping gives them their status (400, 409) without knowing this package."""
from __future__ import annotations

from ..errors import InvalidPipeline, PipelineBusy


class ConfigDocumentInvalid(InvalidPipeline):
    """The document itself is wrong: not YAML, unsafe YAML, or fields the schemas refuse.

    problems: (location, message) pairs; a location names the object and the field, e.g.
    ("pipelines", "film_dim_full", "batch_size")."""

    def __init__(self, problems: list[tuple[tuple, str]]) -> None:
        self.problems = problems
        lines = [f"{'.'.join(str(part) for part in loc)}: {message}" if loc else message for loc, message in problems]
        super().__init__("invalid configuration document: " + "; ".join(lines))


class ConfigRefused(InvalidPipeline):
    """A service refused one object of an otherwise well-formed document; nothing was changed."""


class ConfigBusy(PipelineBusy):
    """A pipeline the document would change or delete is RUNNING; nothing was changed."""
