"""Marshmallow fields that accept and reject input the way the FastAPI/Pydantic v2 original did.

Each rejection raises a ValidationError whose message is a `FieldError`: a str (so marshmallow and
the OpenAPI tooling are happy) that also carries Pydantic's error type, input and context, from
which `api.errors` builds FastAPI's 422 body.
"""
from __future__ import annotations

import math
import re
import uuid
from typing import Any

import marshmallow as ma


class FieldError(str):
    def __new__(cls, type_: str, msg: str, value: Any, ctx: dict | None = None) -> "FieldError":
        error = super().__new__(cls, msg)
        error.type = type_
        error.input = value
        error.ctx = ctx
        return error


def _fail(type_: str, msg: str, value: Any, ctx: dict | None = None) -> ma.ValidationError:
    return ma.ValidationError(FieldError(type_, msg, value, ctx))


class _PydanticField(ma.fields.Field):
    """None is rejected with the field's own type error, as Pydantic does for non-Optional fields."""

    type_error = ("value_error", "Invalid value")
    default_error_messages = {"required": "Field required"}

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None and not self.allow_none:
            raise _fail(*self.type_error, value)
        return super().deserialize(value, attr, data, **kwargs)


# PostgreSQL text cannot hold NUL, so no string field takes one (a 422, below); the OpenAPI document
# says so with this pattern, unless the field's own pattern already leaves NUL out.
NO_NUL_PATTERN = r"^[^\x00]*$"


class String(_PydanticField, ma.fields.String):
    type_error = ("string_type", "Input should be a valid string")

    def __init__(self, *, min_length: int | None = None, max_length: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_length, self.max_length = min_length, max_length
        if min_length is not None or max_length is not None:
            self.metadata.update({k: v for k, v in (("minLength", min_length), ("maxLength", max_length)) if v})
        if "pattern" not in self.metadata and not any(isinstance(v, ma.validate.Regexp) for v in self.validators):
            self.metadata["pattern"] = NO_NUL_PATTERN

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise _fail(*self.type_error, value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate such as "\ud800": Pydantic's string_unicode
            raise _fail(
                "string_unicode", "Input should be a valid string, unable to parse raw data as a unicode string", value
            ) from None
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL; say so as a 422 (FastAPI's shape for a ValueError).
            raise _fail("value_error", "Value error, String should not contain NUL characters", value, {"error": {}})
        if self.min_length is not None and len(value) < self.min_length:
            unit = "character" if self.min_length == 1 else "characters"
            raise _fail(
                "string_too_short",
                f"String should have at least {self.min_length} {unit}",
                value,
                {"min_length": self.min_length},
            )
        if self.max_length is not None and len(value) > self.max_length:
            unit = "character" if self.max_length == 1 else "characters"
            raise _fail(
                "string_too_long",
                f"String should have at most {self.max_length} {unit}",
                value,
                {"max_length": self.max_length},
            )
        return value


class Integer(_PydanticField, ma.fields.Integer):
    type_error = ("int_type", "Input should be a valid integer")

    def __init__(self, *, ge: int | None = None, le: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ge, self.le = ge, le
        if ge is not None:
            self.metadata["minimum"] = ge
        if le is not None:
            self.metadata["maximum"] = le

    def _deserialize(self, value, attr, data, **kwargs):
        number = self._to_int(value)
        if self.ge is not None and number < self.ge:
            raise _fail(
                "greater_than_equal", f"Input should be greater than or equal to {self.ge}", value, {"ge": self.ge}
            )
        if self.le is not None and number > self.le:
            raise _fail("less_than_equal", f"Input should be less than or equal to {self.le}", value, {"le": self.le})
        return number

    def _to_int(self, value: Any) -> int:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _fail("finite_number", "Input should be a finite number", value)
            if abs(value) >= 2**63:
                raise _fail(
                    "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size", value
                )
            if value != int(value):
                raise _fail("int_from_float", "Input should be a valid integer, got a number with a fractional part", value)
            return int(value)
        if isinstance(value, str):
            return _str_to_int(value)
        raise _fail(*self.type_error, value)


# pydantic-core's lax str -> int: trimmed, ASCII digits with single underscores, optional ".000".
_INT_STRING = re.compile(r"([+-]?)0*([0-9]+(?:_[0-9]+)*)(?:\.0+)?", re.ASCII)
_MAX_INT_DIGITS = 4300  # CPython's int/str conversion limit, which Pydantic also applies


def _str_to_int(value: str) -> int:
    match = _INT_STRING.fullmatch(value.strip())
    if match is None:
        raise _fail("int_parsing", "Input should be a valid integer, unable to parse string as an integer", value)
    digits = match.group(2).replace("_", "").lstrip("0") or "0"
    if len(match.group(1)) + len(digits) > _MAX_INT_DIGITS:
        raise _fail("int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size", value)
    return int(match.group(1) + digits)


class Boolean(_PydanticField, ma.fields.Boolean):
    type_error = ("bool_type", "Input should be a valid boolean")
    _TRUE = {"1", "on", "t", "true", "y", "yes"}
    _FALSE = {"0", "off", "f", "false", "n", "no"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            return value
        parsing = ("bool_parsing", "Input should be a valid boolean, unable to interpret input", value)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise _fail(*self.type_error, value)  # 0.5, nan, inf
        if isinstance(value, (int, float)) and abs(value) >= 2**63:
            raise _fail(*self.type_error, value)  # beyond i64, where Pydantic stops trying
        if isinstance(value, (int, float)):
            if value in (0, 1):
                return bool(value)
            raise _fail(*parsing)
        if isinstance(value, str):
            lowered = value.lower()  # Pydantic does not trim: " true" is refused
            if lowered in self._TRUE:
                return True
            if lowered in self._FALSE:
                return False
            raise _fail(*parsing)
        raise _fail(*self.type_error, value)


class Literal(_PydanticField, ma.fields.String):
    """One of a fixed set of strings (Pydantic's Literal[...])."""

    def __init__(self, choices: tuple[str, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.choices = choices
        # OpenAPI 3.0: a nullable enum lists null among its values, or null is not valid after all.
        self.metadata["enum"] = [*choices, None] if self.allow_none else list(choices)
        quoted = [repr(choice) for choice in choices]
        self.expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        self.type_error = ("literal_error", f"Input should be {self.expected}")

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None:
            return self._deserialize(value, attr, data, **kwargs)
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value not in self.choices or not isinstance(value, str):
            raise _fail("literal_error", f"Input should be {self.expected}", value, {"expected": self.expected})
        return value


_HEX = frozenset("0123456789abcdefABCDEF")
_GROUP_STARTS = (0, 9, 14, 19, 24)
_GROUP_LENGTHS = (8, 4, 4, 4, 12)


def parse_uuid(value: str) -> uuid.UUID:
    """A UUID string in the forms Pydantic accepts (simple, hyphenated, {braced}, urn:uuid:), else
    a uuid_parsing error with Pydantic's message and ctx."""
    body = value[1:-1] if len(value) == 38 and value[0] == "{" and value[-1] == "}" else value
    body = body[9:] if len(value) == 45 and value.startswith("urn:uuid:") else body
    if (len(body) == 32 and set(body) <= _HEX) or (
        len(body) == 36
        and all(body[i - 1] == "-" for i in _GROUP_STARTS[1:])
        and set(body.replace("-", "")) <= _HEX
        and body.count("-") == 4
    ):
        return uuid.UUID(body)
    reason = _uuid_error(value)
    raise _fail("uuid_parsing", f"Input should be a valid UUID, {reason}", value, {"error": reason})


def _uuid_error(value: str) -> str:
    """The uuid crate's InvalidUuid::into_err, which picks the message Pydantic shows. A {braced} or
    urn:uuid: input of exactly the right length is judged by its inner part alone."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if (size == 38 and value[0] == "{" and value[-1] == "}") or (size == 45 and value.startswith("urn:uuid:")):
        value = value[1:-1] if value[0] == "{" else value[9:]
        size = len(value.encode("utf-8", "surrogatepass"))
    if len(value) >= 2 and value[0] == "{" and value[-1] == "}":
        body, offset, simple = value[1:-1], 1, False
    elif value.startswith("urn:uuid:"):
        body, offset, simple = value[9:], 9, False
    else:
        body, offset, simple = value, 0, True
    hyphens = []
    index = 0  # byte offset within body, as the crate counts
    for character in body:
        if character == "-":
            hyphens.append(index)
        elif character not in _HEX:
            return f"invalid character: found `{character}` at {index + offset + 1}"
        index += len(character.encode("utf-8", "surrogatepass"))
    if not hyphens and simple:
        return f"invalid length: expected length 32 for simple format, found {size}"
    if len(hyphens) != 4:
        return f"invalid group count: expected 5, found {len(hyphens) + 1}"
    for group in range(4):
        if hyphens[group] != _GROUP_STARTS[group + 1] - 1:
            found = hyphens[group] - _GROUP_STARTS[group]
            return f"invalid group length in group {group}: expected {_GROUP_LENGTHS[group]}, found {found}"
    return f"invalid group length in group 4: expected 12, found {size - _GROUP_STARTS[4]}"


class Float(_PydanticField, ma.fields.Float):
    """A finite number (ints accepted), optionally bounded, with Pydantic's error types."""

    type_error = ("float_type", "Input should be a valid number")

    def __init__(self, *, ge: float | None = None, le: float | None = None, gt: float | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ge, self.le, self.gt = ge, le, gt
        self.metadata.update({k: v for k, v in (("minimum", ge), ("maximum", le), ("exclusiveMinimum", gt))
                              if v is not None})

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(*self.type_error, value)
        number = float(value)
        if not math.isfinite(number):
            raise _fail("finite_number", "Input should be a finite number", value)
        if self.gt is not None and number <= self.gt:
            raise _fail("greater_than", f"Input should be greater than {self.gt}", value, {"gt": self.gt})
        if self.ge is not None and number < self.ge:
            raise _fail("greater_than_equal", f"Input should be greater than or equal to {self.ge}", value,
                        {"ge": self.ge})
        if self.le is not None and number > self.le:
            raise _fail("less_than_equal", f"Input should be less than or equal to {self.le}", value, {"le": self.le})
        return number
