"""What a transform is: a config schema, a column-list rule, and a batch function."""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import marshmallow as ma
import pyarrow as pa


class TransformConfigInvalid(Exception):
    """A task's config does not fit its transform's schema; `messages` is marshmallow's per-field dict."""

    def __init__(self, messages: Any) -> None:
        super().__init__(_flatten(messages))
        self.messages = messages


class ColumnsRefused(Exception):
    """The transform cannot take the columns it would receive (a missing column, a clash)."""


class NoConfig(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class Transform:
    """Subclass this and register the class under the entry-point group `etl_console.transforms`.

    One instance is made per task per run, so an instance may keep state across the run's batches
    (Dedupe does). The class docstring is what `etl-console transforms` and the API show.
    """

    ConfigSchema: ClassVar[type[ma.Schema]] = NoConfig

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config  # already loaded by ConfigSchema
        self.input_columns: list[str] = []
        self.output_columns_: list[str] = []

    @classmethod
    def load_config(cls, raw: Any) -> dict[str, Any]:
        try:
            return cls.ConfigSchema().load(raw if raw is not None else {})
        except ma.ValidationError as error:
            raise TransformConfigInvalid(error.messages) from None

    def output_columns(self, columns: list[str]) -> list[str]:
        """The column list after this task, given the list before it; raise ColumnsRefused if it cannot."""
        return list(columns)

    def prepare(self, columns: list[str]) -> list[str]:
        self.input_columns = list(columns)
        self.output_columns_ = self.output_columns(list(columns))
        return self.output_columns_

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raise NotImplementedError

    def finish(self) -> pa.RecordBatch | None:
        """Rows held back until the source is exhausted (a dedupe keeping the last row); None: nothing."""
        return None

    # helpers for subclasses ---------------------------------------------------------------------
    def require(self, columns: list[str], names: list[str]) -> None:
        missing = [name for name in names if name not in columns]
        if missing:
            raise ColumnsRefused(f"no column {', '.join(missing)} (columns here: {', '.join(columns)})")


class RowTransform(Transform):
    """The convenience form for simple code: `row(self, row: dict) -> dict | None` per row
    (None drops it). Each batch becomes Python dicts and back: about 0.5 µs per row of three columns
    before the function's own work, measured (README, "PYTHON pipelines"); a batch transform over
    Arrow arrays costs a few nanoseconds per value, so prefer one for anything hot."""

    def row(self, row: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        row = self.row
        kept = [out for out in map(row, batch.to_pylist()) if out is not None]
        columns = self.output_columns_ or self.input_columns
        return pa.RecordBatch.from_pydict({name: [out.get(name) for out in kept] for name in columns})


def row_transform(output_columns: Callable[[list[str]], list[str]] | None = None,
                  config_schema: type[ma.Schema] = NoConfig) -> Callable[[Callable], type[RowTransform]]:
    """Decorator turning `def f(row: dict) -> dict | None` (or `f(row, config)`) into a transform class.

        @row_transform(output_columns=lambda columns: [*columns, "title_length"])
        def title_length(row):
            return {**row, "title_length": len(row["title"] or "")}
    """

    def wrap(function: Callable) -> type[RowTransform]:
        takes_config = function.__code__.co_argcount >= 2

        class Wrapped(RowTransform):
            ConfigSchema = config_schema

            def output_columns(self, columns: list[str]) -> list[str]:
                return output_columns(columns) if output_columns else list(columns)

            def row(self, row):
                return function(row, self.config) if takes_config else function(row)

        Wrapped.__name__ = Wrapped.__qualname__ = function.__name__
        Wrapped.__doc__ = function.__doc__
        Wrapped.__module__ = function.__module__
        return Wrapped

    return wrap


def _flatten(messages: Any, prefix: str = "") -> str:
    if isinstance(messages, dict):
        return "; ".join(_flatten(value, f"{prefix}{key}: " if not prefix else f"{prefix[:-2]}.{key}: ")
                         for key, value in messages.items())
    if isinstance(messages, list):
        return prefix + " ".join(str(message) for message in messages)
    return prefix + str(messages)
