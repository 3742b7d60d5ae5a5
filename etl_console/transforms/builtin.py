"""The built-in transforms (registered in setup.cfg under `etl_console.transforms`).

All but parse_json and hash work column-at-a-time in Arrow's C++ kernels; those two call Python per
value (json.loads, hmac.digest), which is still far cheaper than building row dicts.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

import marshmallow as ma
import pyarrow as pa
import pyarrow.compute as pc

from .base import ColumnsRefused, Transform


class _Config(ma.Schema):
    class Meta:
        unknown = ma.RAISE  # a misspelt option is an error at save, not silently ignored


def _column_list(**kwargs) -> ma.fields.List:
    return ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1)), validate=ma.validate.Length(min=1),
                          **kwargs)


def _replace(batch: pa.RecordBatch, name: str, values: pa.Array) -> pa.RecordBatch:
    index = batch.schema.get_field_index(name)
    return batch.set_column(index, name, values)


def _as_text(values: pa.Array) -> pa.Array:
    return values if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) else pc.cast(values, pa.string())


class SelectColumns(Transform):
    """Keep only the listed columns, in that order."""

    class ConfigSchema(_Config):
        columns = _column_list(required=True, metadata={"description": "Columns to keep, in output order"})

    def output_columns(self, columns):
        self.require(columns, self.config["columns"])
        return list(self.config["columns"])

    def apply(self, batch):
        return batch.select(self.config["columns"])


class RenameColumns(Transform):
    """Rename columns: {"columns": {"old name": "new name", ...}}; the others keep their names."""

    class ConfigSchema(_Config):
        columns = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(min=1)),
                                 values=ma.fields.String(validate=ma.validate.Length(min=1)), required=True,
                                 validate=ma.validate.Length(min=1), metadata={"description": "old name -> new name"})

    def output_columns(self, columns):
        mapping = self.config["columns"]
        self.require(columns, list(mapping))
        renamed = [mapping.get(name, name) for name in columns]
        clashes = sorted({name for name in renamed if renamed.count(name) > 1})
        if clashes:
            raise ColumnsRefused(f"renaming would give two columns named {', '.join(clashes)}")
        return renamed

    def apply(self, batch):
        return batch.rename_columns(self.output_columns_)


CAST_TYPES = {"text": pa.string(), "integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(),
              "date": pa.date32(), "numeric": pa.string()}


class CastColumns(Transform):
    """Convert columns to another type: text, integer, float, boolean, date or numeric (exact
    decimal text, checked). A value that does not convert fails the run, naming it."""

    class ConfigSchema(_Config):
        columns = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(validate=ma.validate.OneOf(CAST_TYPES)),
                                 required=True, validate=ma.validate.Length(min=1),
                                 metadata={"description": f"column -> one of {', '.join(CAST_TYPES)}"})

    def output_columns(self, columns):
        self.require(columns, list(self.config["columns"]))
        return columns

    def apply(self, batch):
        for name, type_name in self.config["columns"].items():
            values = batch.column(name)
            if type_name == "numeric":
                text = pc.utf8_trim_whitespace(_as_text(values))
                bad = pc.invert(pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"))
                if pc.any(pc.fill_null(bad, False)).as_py():
                    example = pc.filter(text, pc.fill_null(bad, False))[0].as_py()
                    raise ValueError(f"column {name}: {example!r} is not a number")
                values = text
            elif type_name == "boolean" and not pa.types.is_boolean(values.type):
                text = pc.utf8_lower(pc.utf8_trim_whitespace(_as_text(values)))
                true = pc.is_in(text, pa.array(["t", "true", "yes", "y", "on", "1"]))
                false = pc.is_in(text, pa.array(["f", "false", "no", "n", "off", "0"]))
                neither = pc.and_(pc.invert(pc.or_(true, false)), pc.is_valid(text))
                if pc.any(neither).as_py():
                    raise ValueError(f"column {name}: {pc.filter(text, neither)[0].as_py()!r} is not a boolean")
                values = pc.if_else(pc.is_valid(text), true, pa.nulls(len(text), pa.bool_()))
            else:
                try:
                    values = pc.cast(values, CAST_TYPES[type_name])
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                    raise ValueError(f"column {name} to {type_name}: {error}") from None
            batch = _replace(batch, name, values)
        return batch


class NormalizeText(Transform):
    """Clean text columns: trim surrounding whitespace, collapse inner runs of whitespace to one
    space, and change case (lower, upper, title)."""

    class ConfigSchema(_Config):
        columns = _column_list(required=True)
        trim = ma.fields.Boolean(load_default=True)
        collapse_whitespace = ma.fields.Boolean(load_default=False)
        case = ma.fields.String(allow_none=True, load_default=None,
                                validate=ma.validate.OneOf(["lower", "upper", "title"]))
        empty_as_null = ma.fields.Boolean(load_default=False, metadata={"description": "'' after cleaning -> null"})

    def output_columns(self, columns):
        self.require(columns, self.config["columns"])
        return columns

    def apply(self, batch):
        config = self.config
        for name in config["columns"]:
            values = _as_text(batch.column(name))
            if config["collapse_whitespace"]:
                values = pc.replace_substring_regex(values, r"\s+", " ")
            if config["trim"]:
                values = pc.utf8_trim_whitespace(values)
            if config["case"]:
                values = {"lower": pc.utf8_lower, "upper": pc.utf8_upper, "title": pc.utf8_title}[config["case"]](values)
            if config["empty_as_null"]:
                values = pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)
            batch = _replace(batch, name, values)
        return batch


class FillNulls(Transform):
    """Replace nulls with a default per column: {"values": {"rating": 0, "title": "untitled"}}."""

    class ConfigSchema(_Config):
        values = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(allow_none=False), required=True,
                                validate=ma.validate.Length(min=1), metadata={"description": "column -> default value"})

    def output_columns(self, columns):
        self.require(columns, list(self.config["values"]))
        return columns

    def apply(self, batch):
        for name, default in self.config["values"].items():
            values = batch.column(name)
            try:
                fill = pa.scalar(default).cast(values.type) if not pa.types.is_null(values.type) else pa.scalar(default)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise ValueError(f"column {name}: default {default!r} does not fit type {values.type}") from None
            batch = _replace(batch, name, pc.fill_null(values, fill) if not pa.types.is_null(values.type)
                             else pa.array([default] * len(values)))
        return batch


FILTER_OPERATORS = {
    "eq": pc.equal, "ne": pc.not_equal, "lt": pc.less, "le": pc.less_equal, "gt": pc.greater,
    "ge": pc.greater_equal,
}
_VALUELESS = ("is_null", "not_null")
_LIST_VALUED = ("in", "not_in")
_TEXT = ("contains", "starts_with", "ends_with")


class FilterRows(Transform):
    """Keep the rows where `column operator value` holds (rows where it is null are dropped, as in
    SQL). Operators: eq, ne, lt, le, gt, ge, in, not_in (value is a list), contains, starts_with,
    ends_with (text), is_null, not_null (no value). Chain several filter tasks for AND."""

    class ConfigSchema(_Config):
        column = ma.fields.String(required=True)
        operator = ma.fields.String(required=True, validate=ma.validate.OneOf(
            [*FILTER_OPERATORS, *_LIST_VALUED, *_TEXT, *_VALUELESS]))
        value = ma.fields.Raw(allow_none=True, load_default=None)

        @ma.validates_schema
        def _value_fits(self, data, **kwargs):
            operator, value = data.get("operator"), data.get("value")
            if operator in _VALUELESS:
                if value is not None:
                    raise ma.ValidationError(f"{operator} takes no value", "value")
            elif operator in _LIST_VALUED:
                if not isinstance(value, list) or not value:
                    raise ma.ValidationError(f"{operator} needs a non-empty list", "value")
            elif value is None or isinstance(value, (list, dict)):
                raise ma.ValidationError(f"{operator} needs one value (text, number or boolean)", "value")
            if operator in _TEXT and not isinstance(value, str):
                raise ma.ValidationError(f"{operator} needs a text value", "value")

    def output_columns(self, columns):
        self.require(columns, [self.config["column"]])
        return columns

    def apply(self, batch):
        column, operator, value = self.config["column"], self.config["operator"], self.config["value"]
        values = batch.column(column)
        if operator == "is_null":
            keep = pc.is_null(values)
        elif operator == "not_null":
            keep = pc.is_valid(values)
        elif operator in _TEXT:
            function = {"contains": pc.match_substring, "starts_with": pc.starts_with, "ends_with": pc.ends_with}
            keep = function[operator](_as_text(values), value)
        elif operator in _LIST_VALUED:
            keep = pc.is_in(values, value_set=self._scalars(values.type, value, column, as_array=True))
            if operator == "not_in":
                keep = pc.invert(keep)
            keep = pc.and_(keep, pc.is_valid(values))
        else:
            keep = FILTER_OPERATORS[operator](values, self._scalars(values.type, value, column))
        return batch.filter(pc.fill_null(keep, False))

    @staticmethod
    def _scalars(type_: pa.DataType, value: Any, column: str, as_array: bool = False):
        try:
            return pa.array(value).cast(type_) if as_array else pa.scalar(value).cast(type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise ValueError(f"filter value {value!r} does not fit column {column} of type {type_}") from None


class Dedupe(Transform):
    """Keep one row per key: the first or the last by `order_by` (ties and no order_by: arrival
    order), across the whole run, not per batch. keep=first without order_by streams (it remembers
    the keys seen); otherwise the winning row of every key is held until the source ends, so memory
    grows with the number of distinct keys (compacted as it goes)."""

    class ConfigSchema(_Config):
        keys = _column_list(required=True)
        order_by = ma.fields.String(allow_none=True, load_default=None)
        keep = ma.fields.String(load_default="first", validate=ma.validate.OneOf(["first", "last"]))

    _SEQ = "__etl_dedupe_seq"

    def __init__(self, config):
        super().__init__(config)
        self._seen: set = set()
        self._held: list[pa.RecordBatch] = []
        self._held_rows = 0
        self._compacted_rows = 0
        self._sequence = 0

    def output_columns(self, columns):
        self.require(columns, [*self.config["keys"], *([self.config["order_by"]] if self.config["order_by"] else [])])
        return columns

    @property
    def _streams(self) -> bool:
        return self.config["keep"] == "first" and not self.config["order_by"]

    def apply(self, batch):
        if self._streams:
            keys = list(zip(*(batch.column(name).to_pylist() for name in self.config["keys"])))
            keep = []
            for key in keys:
                keep.append(key not in self._seen)
                self._seen.add(key)
            return batch.filter(pa.array(keep, pa.bool_()))
        sequence = pa.array(range(self._sequence, self._sequence + batch.num_rows), pa.int64())
        self._sequence += batch.num_rows
        self._held.append(batch.append_column(self._SEQ, sequence))
        self._held_rows += batch.num_rows
        if self._held_rows >= 2 * self._compacted_rows + 65536:
            self._compact()
        return batch.slice(0, 0)  # rows leave at finish(), once every candidate has been seen

    def finish(self):
        if self._streams:
            return None
        self._compact()
        if not self._held:
            return None
        table = pa.Table.from_batches(self._held).sort_by(self._SEQ).drop_columns([self._SEQ])
        self._held = []
        return table.combine_chunks().to_batches()[0] if table.num_rows else None

    def _compact(self) -> None:
        if not self._held:
            return
        table = pa.Table.from_batches(self._held)
        order = self.config["order_by"]
        direction = "ascending" if self.config["keep"] == "first" else "descending"
        sort_keys = ([(order, direction, "at_end")] if order else []) + [(self._SEQ, direction, "at_end")]
        ranked = table.take(pc.sort_indices(table, sort_keys=sort_keys))
        # "first" of a group follows input order only without threads: the ranked order decides.
        winners = ranked.group_by(self.config["keys"], use_threads=False).aggregate([(self._SEQ, "first")])
        kept = table.filter(pc.is_in(table.column(self._SEQ), value_set=winners.column(f"{self._SEQ}_first")))
        self._held = kept.combine_chunks().to_batches()
        self._held_rows = self._compacted_rows = kept.num_rows


class HashColumns(Transform):
    """Replace values with a keyed hash (HMAC, hex): equal inputs stay equal, so joins and counts
    still work, but nobody without the secret can recompute or reverse them. The secret is read
    from the environment variable named by secret_env when the run starts; it never travels in
    the config."""

    class ConfigSchema(_Config):
        columns = _column_list(required=True)
        secret_env = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$"),
                                      metadata={"description": "Name of the environment variable holding the key"})
        algorithm = ma.fields.String(load_default="sha256", validate=ma.validate.OneOf(["sha256", "sha512", "blake2b"]))

    def output_columns(self, columns):
        self.require(columns, self.config["columns"])
        return columns

    def prepare(self, columns):
        out = super().prepare(columns)
        self._key = os.environ.get(self.config["secret_env"], "").encode()
        return out

    def apply(self, batch):
        if not self._key:
            raise ValueError(f"environment variable {self.config['secret_env']} (the hash key) is not set or empty")
        mac = _hmac_function(self._key, self.config["algorithm"])
        for name in self.config["columns"]:
            # Each distinct value is hashed once per batch (personal data repeats: emails, countries);
            # Arrow's dictionary encoding finds them in C, and take() spreads the digests back.
            encoded = pc.dictionary_encode(_as_text(batch.column(name)))
            digests = pa.array([mac(value) for value in encoded.dictionary.cast(pa.binary()).to_pylist()], pa.string())
            batch = _replace(batch, name, pc.take(digests, encoded.indices))
        return batch


def _hmac_function(key: bytes, algorithm: str):
    """HMAC (RFC 2104) with the key's inner and outer pads absorbed once: per value two hash-state
    copies instead of hmac.digest()'s full setup, about twice as fast; equal to hmac.new(...)."""
    import hashlib

    block_size = hashlib.new(algorithm).block_size
    if len(key) > block_size:
        key = hashlib.new(algorithm, key).digest()
    key = key.ljust(block_size, b"\0")
    inner_copy = hashlib.new(algorithm, bytes(byte ^ 0x36 for byte in key)).copy
    outer_copy = hashlib.new(algorithm, bytes(byte ^ 0x5C for byte in key)).copy

    def mac(value: bytes) -> str:
        inner = inner_copy()
        inner.update(value)
        outer = outer_copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    return mac


class MaskColumns(Transform):
    """Mask text, keeping the last `keep_last` characters: 'alice@example.com' -> '*************.com'."""

    class ConfigSchema(_Config):
        columns = _column_list(required=True)
        keep_last = ma.fields.Integer(load_default=4, validate=ma.validate.Range(min=0))
        mask_char = ma.fields.String(load_default="*", validate=ma.validate.Length(equal=1))

    def output_columns(self, columns):
        self.require(columns, self.config["columns"])
        return columns

    def apply(self, batch):
        keep, char = self.config["keep_last"], self.config["mask_char"]
        for name in self.config["columns"]:
            values = _as_text(batch.column(name))
            length = pc.utf8_length(values)
            hidden = pc.max_element_wise(pc.subtract(length, keep), 0)
            tail = pc.utf8_slice_codeunits(values, start=-keep) if keep else pc.utf8_slice_codeunits(values, start=0, stop=0)
            masked = pc.binary_join_element_wise(pc.binary_repeat(pa.scalar(char), hidden), tail, "")
            batch = _replace(batch, name, masked)
        return batch


class ParseJson(Transform):
    """Parse a JSON text column into columns: {"column": "payload", "fields": {"country": "address.country"}}
    takes payload->'address'->'country' into a new column `country` (objects and arrays stay JSON
    text). Invalid JSON fails the run unless on_error is "null"."""

    class ConfigSchema(_Config):
        column = ma.fields.String(required=True)
        fields = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(min=1)),
                                values=ma.fields.String(validate=ma.validate.Length(min=1)), required=True,
                                validate=ma.validate.Length(min=1),
                                metadata={"description": "new column -> dotted path in the JSON"})
        drop_source = ma.fields.Boolean(load_default=True)
        on_error = ma.fields.String(load_default="fail", validate=ma.validate.OneOf(["fail", "null"]))

    def output_columns(self, columns):
        self.require(columns, [self.config["column"]])
        kept = [name for name in columns if not (self.config["drop_source"] and name == self.config["column"])]
        clashes = [name for name in self.config["fields"] if name in kept]
        if clashes:
            raise ColumnsRefused(f"columns already exist: {', '.join(clashes)}")
        return kept + list(self.config["fields"])

    def apply(self, batch):
        paths = {name: path.split(".") for name, path in self.config["fields"].items()}
        extracted: dict[str, list] = {name: [] for name in paths}
        loads, fail = json.loads, self.config["on_error"] == "fail"
        for number, text in enumerate(_as_text(batch.column(self.config["column"])).to_pylist()):
            document = None
            if text is not None:
                try:
                    document = loads(text)
                except ValueError as error:
                    if fail:
                        raise ValueError(f"row {number + 1} of the batch: column {self.config['column']} "
                                         f"is not JSON ({error})") from None
            for name, path in paths.items():
                extracted[name].append(_dig(document, path))
        if self.config["drop_source"]:
            batch = batch.drop_columns([self.config["column"]])
        for name, values in extracted.items():
            batch = batch.append_column(name, pa.array(values, pa.string()))
        return batch


def _dig(document: Any, path: list[str]) -> str | None:
    for step in path:
        if isinstance(document, dict):
            document = document.get(step)
        elif isinstance(document, list) and re.fullmatch(r"\d+", step) and int(step) < len(document):
            document = document[int(step)]
        else:
            return None
    if document is None:
        return None
    if isinstance(document, bool):
        return "true" if document else "false"
    if isinstance(document, (dict, list)):
        return json.dumps(document)
    return str(document)
