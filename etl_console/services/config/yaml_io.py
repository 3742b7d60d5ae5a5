"""YAML in and out, in PyYAML's safe mode only: no tag may construct a Python object."""
from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigDocumentInvalid

MAX_DOCUMENT_BYTES = 5_000_000
WIDTH = 1_000_000  # never fold a long line: a one-word change must stay a one-line diff


def parse(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigDocumentInvalid([((), "the document is not UTF-8 text")]) from None
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ConfigDocumentInvalid([((), f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")])
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.constructor.ConstructorError as error:
        # e.g. !!python/object: the safe loader refuses to build it, and so do we.
        raise ConfigDocumentInvalid([((), f"unsupported YAML tag (only plain data is allowed): {error.problem}"
                                           f"{_where(error.problem_mark)}")]) from None
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigDocumentInvalid([((), f"not valid YAML: {problem}{_where(getattr(error, 'problem_mark', None))}")]) from None
    if len(documents) != 1:
        raise ConfigDocumentInvalid([((), f"expected one YAML document, found {len(documents)}")])
    if not isinstance(documents[0], dict):
        raise ConfigDocumentInvalid([((), "the document must be a mapping with `version: 1`")])
    return documents[0]


def _where(mark) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (SQL) as literal blocks, so a diff shows the changed line."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=WIDTH, indent=2)
