"""422 bodies, checked against Pydantic v2 itself as an oracle (contract §3.2, §3.4, §6; DESIGN §1).

FastAPI json.loads()es the body and validates it with TypeAdapter(Model).validate_python(body,
from_attributes=True); its 422 detail is errors(include_url=False) with "body" put in front of
each loc. The models below are what the original app most likely declared.
"""
from __future__ import annotations

import json
import uuid
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field, ValidationError

from etl_console.api.schemas import PIPELINE_MODES
from tests.conftest import close_app, make_app

from .conftest import BASE, body_of, detail_of

QUERY = "SELECT id as film_id, title, rating FROM content.film_work"
VALID = {"name": "n", "target_table": "analytics.film_dim", "source_query": QUERY}
# Which modes are accepted is a product decision ("incremental" may be enabled); how a wrong one
# is reported is the contract point, so the oracle takes the accepted set from the app.
Mode = Literal[PIPELINE_MODES]


@pytest.fixture(scope="module")
def client(database_url):
    """One app for the whole module: these tests only validate input, and a fresh app plus two
    TRUNCATEs per case would triple the time. Whatever is created gets a unique name."""
    app = make_app(database_url, START_RUNNER=False)
    yield app.test_client()
    close_app(app)


def unique(body: dict) -> dict:
    return {**body, "name": f"v_{uuid.uuid4().hex[:10]}"} if body.get("name") == "n" else body


def names(client) -> set[str]:
    return {p["name"] for p in body_of(client.get(f"{BASE}/"), 200)}


class PipelineCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    description: Optional[str] = None
    type: Literal["SQL", "PYTHON"] = "SQL"
    mode: Mode = "full"
    enabled: bool = True
    target_table: str
    batch_size: int = Field(1000, ge=1, le=1_000_000)
    source_query: str = Field(min_length=1)


class PipelineUpdate(BaseModel):
    """All optional. Defaults are not validated, so an absent key passes while an explicit null
    gets the type error: our API refuses null where the column needs a value (see the report)."""

    name: str = Field(None, min_length=1, max_length=255)
    description: Optional[str] = None
    type: Literal["SQL", "PYTHON"] = None
    mode: Mode = None
    enabled: bool = None
    target_table: str = None
    batch_size: int = Field(None, ge=1, le=1_000_000)
    source_query: str = Field(None, min_length=1)


def roundtrip(value):
    return json.loads(json.dumps(value))


def oracle(model: type[BaseModel], raw: str) -> list[dict] | None:
    """What FastAPI answers for this body: None when it validates, else the 422 detail."""
    try:
        model.model_validate(json.loads(raw), from_attributes=True)
    except ValidationError as error:
        return roundtrip([{**e, "loc": ["body", *e["loc"]]} for e in error.errors(include_url=False)])
    return None


def json_oracle(model: type[BaseModel], raw: str) -> list[dict] | None:
    """The same through model_validate_json: it must agree for object bodies."""
    try:
        model.model_validate_json(raw)
    except ValidationError as error:
        return roundtrip([{**e, "loc": ["body", *e["loc"]]} for e in error.errors(include_url=False)])
    return None


BAD_VALUES = {
    "name": [None, 1, 1.5, True, [], {}, "", "x" * 256],
    "description": [1, 1.5, True, [], {"a": 1}],
    "type": [None, "python", "sql", 1, True, ["SQL"]],
    "mode": [None, "FULL", "INCREMENTAL", "streaming", 0],
    "enabled": [None, "maybe", " true", "", "1.0", 2, -1, 0.5, 2.0, 1e20, 10**30, [], {}],
    "target_table": [None, 1, True, [], {}],
    "batch_size": [
        None, "abc", "", "1.5", "1e3", "0x10", "1__0", "٣", " ", 1.5, 0, -1, 1_000_001, 10**20, 1e20,
        9.3e18, "9" * 4301, [], {}, False, 0.0, "0",
    ],
    "source_query": [None, "", 1, [], {}],
}
# Values Pydantic converts (lax mode): the API must accept them and store the converted value.
GOOD_VALUES = {
    "description": [None, "", "ü"],
    "enabled": [True, False, 1, 0, 1.0, 0.0, "yes", "no", "TRUE", "off", "t", "f", "1", "0", "on", "Y"],
    "batch_size": [1, 1_000_000, "10", " 10 ", "+10", "1_000", "10.0", "010", 10.0, True],
    "type": ["SQL", "PYTHON"],
    "mode": ["full"],
}


def _case_id(field, value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return f"{field}={text[:20]}{'…' if len(text) > 20 else ''}"


CREATE_BAD = [pytest.param({**VALID, field: v}, id=_case_id(field, v)) for field, vs in BAD_VALUES.items() for v in vs]
CREATE_BAD += [
    pytest.param({}, id="empty-object"),
    pytest.param({"name": "x"}, id="only-name"),
    pytest.param({"description": "d", "batch_size": 5}, id="all-required-missing"),
    pytest.param({"target_table": "analytics.film_dim", "source_query": QUERY}, id="name-missing"),
    pytest.param({**VALID, "name": None, "batch_size": "x", "type": "Z", "enabled": "maybe"}, id="four-errors-in-order"),
    pytest.param({"name": 5, "unknown": 1}, id="wrong-plus-missing-plus-unknown"),
]
CREATE_GOOD = [pytest.param({**VALID, field: v}, id=_case_id(field, v)) for field, vs in GOOD_VALUES.items() for v in vs]


@pytest.mark.parametrize("body", CREATE_BAD)
def test_create_422_equals_pydantic(client, body):
    raw = json.dumps(body)
    expected = oracle(PipelineCreate, raw)
    assert expected is not None and expected == json_oracle(PipelineCreate, raw)
    response = client.post(f"{BASE}/", data=raw, content_type="application/json")
    assert detail_of(response, 422) == expected
    assert "n" not in names(client)


@pytest.mark.parametrize("body", CREATE_GOOD)
def test_create_accepts_and_converts_what_pydantic_accepts(client, body):
    raw = json.dumps(unique(body))
    assert oracle(PipelineCreate, raw) is None
    expected = PipelineCreate.model_validate(json.loads(raw)).model_dump(exclude={"source_query"})
    created = body_of(client.post(f"{BASE}/", data=raw, content_type="application/json"), 201)
    assert {key: created[key] for key in expected} == expected
    assert created["status"] == ("IDLE" if expected["enabled"] else "PAUSED")


PATCH_BAD = [pytest.param({field: v}, id=_case_id(field, v)) for field, vs in BAD_VALUES.items() for v in vs]
PATCH_BAD = [p for p in PATCH_BAD if p.values[0] != {"description": None}]
PATCH_BAD += [pytest.param({"batch_size": 0, "name": ""}, id="two-errors-in-field-order")]
PATCH_GOOD = [pytest.param({field: v}, id=_case_id(field, v)) for field, vs in GOOD_VALUES.items() for v in vs]


@pytest.mark.parametrize("body", PATCH_BAD)
def test_patch_422_equals_pydantic(client, pipeline, body):
    raw = json.dumps(body)
    expected = oracle(PipelineUpdate, raw)
    assert expected is not None and expected == json_oracle(PipelineUpdate, raw)
    response = client.patch(f"{BASE}/{pipeline['id']}", data=raw, content_type="application/json")
    assert detail_of(response, 422) == expected
    assert body_of(client.get(f"{BASE}/{pipeline['id']}"), 200) == pipeline


@pytest.mark.parametrize("body", PATCH_GOOD)
def test_patch_accepts_and_converts_what_pydantic_accepts(client, pipeline, body):
    raw = json.dumps(body)
    assert oracle(PipelineUpdate, raw) is None
    changes = PipelineUpdate.model_validate(json.loads(raw)).model_dump(exclude_unset=True)
    updated = body_of(client.patch(f"{BASE}/{pipeline['id']}", data=raw, content_type="application/json"), 200)
    assert {key: updated[key] for key in changes} == changes


# Bodies that are not a JSON object at all.


@pytest.mark.parametrize("raw", ["[]", "[1, 2]", '"text"', "1", "1.5", "null", "true", "false"])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_non_object_body_is_model_attributes_type(client, pipeline, raw, method):
    model = PipelineCreate if method == "post" else PipelineUpdate
    expected = oracle(model, raw)
    assert [e["type"] for e in expected] == ["model_attributes_type"]  # not json mode's "model_type"
    url = f"{BASE}/" if method == "post" else f"{BASE}/{pipeline['id']}"
    assert detail_of(getattr(client, method)(url, data=raw, content_type="application/json"), 422) == expected


@pytest.mark.parametrize("raw", ["{", "{'name': 'x'}", '{"name": "x",}', '{"name": }', "[1,", "nul", '{"a": 1} x', " ", "\n"])
def test_invalid_json_is_json_invalid_at_pythons_position(client, raw):
    try:
        json.loads(raw)
    except json.JSONDecodeError as error:
        expected = [{"type": "json_invalid", "loc": ["body", error.pos], "msg": "JSON decode error", "input": {},
                     "ctx": {"error": error.msg}}]
    assert detail_of(client.post(f"{BASE}/", data=raw, content_type="application/json"), 422) == expected


def test_invalid_json_brace_exact_body(client):
    response = client.post(f"{BASE}/", data="{", content_type="application/json")
    assert response.get_data() == (
        b'{"detail":[{"type":"json_invalid","loc":["body",1],"msg":"JSON decode error","input":{},'
        b'"ctx":{"error":"Expecting property name enclosed in double quotes"}}]}'
    )


@pytest.mark.parametrize("content_type", ["application/json", None])
@pytest.mark.parametrize("method", ["post", "patch"])
def test_empty_body_is_missing_body(client, pipeline, content_type, method):
    url = f"{BASE}/" if method == "post" else f"{BASE}/{pipeline['id']}"
    response = getattr(client, method)(url, data=b"", content_type=content_type)
    assert detail_of(response, 422) == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_non_json_content_type_is_not_parsed(client, content_type):
    # FastAPI only parses application/json and */*+json; other bodies reach Pydantic as a string.
    raw = json.dumps(VALID)
    response = client.post(f"{BASE}/", data=raw, content_type=content_type)
    assert detail_of(response, 422) == [
        {"type": "model_attributes_type", "loc": ["body"],
         "msg": "Input should be a valid dictionary or object to extract fields from", "input": raw}
    ]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/vnd.api+json", "APPLICATION/JSON", None]
)
def test_json_content_types_are_parsed(client, content_type):
    body_of(client.post(f"{BASE}/", data=json.dumps(unique(VALID)), content_type=content_type), 201)


def test_utf8_bom_is_accepted_as_by_json_loads(client):
    raw = b"\xef\xbb\xbf" + json.dumps(unique(VALID)).encode()
    body_of(client.post(f"{BASE}/", data=raw, content_type="application/json"), 201)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"name": "\xff", "target_table": "t", "source_query": "q"}', id="not-utf8"),
        pytest.param(b'{"batch_size": ' + b"9" * 5000 + b"}", id="int-over-4300-digits"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nesting-too-deep"),
    ],
)
def test_unparseable_body_is_fastapis_400(client, raw):
    response = client.post(f"{BASE}/", data=raw, content_type="application/json")
    assert detail_of(response, 400) == "There was an error parsing the body"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_422_and_the_body_stays_valid_json(client, literal):
    # Python's json reads these; FastAPI then failed to render its 422 (a 500). We echo null.
    raw = json.dumps(VALID)[:-1] + f', "batch_size": {literal}, "enabled": {literal}}}'
    assert detail_of(client.post(f"{BASE}/", data=raw, content_type="application/json"), 422) == [
        {"type": "bool_type", "loc": ["body", "enabled"], "msg": "Input should be a valid boolean", "input": None},
        {"type": "finite_number", "loc": ["body", "batch_size"], "msg": "Input should be a finite number", "input": None},
    ]


@pytest.mark.parametrize("field", ["name", "description", "target_table", "source_query"])
def test_lone_surrogate_is_422_string_unicode(client, field):
    # json.dumps writes the escape \ud800. FastAPI 500'd rendering it back; we echo U+FFFD instead.
    raw = json.dumps({**VALID, field: "ab\ud800"})
    assert detail_of(client.post(f"{BASE}/", data=raw, content_type="application/json"), 422) == [
        {"type": "string_unicode", "loc": ["body", field],
         "msg": "Input should be a valid string, unable to parse raw data as a unicode string", "input": "ab\ufffd"}
    ]


@pytest.mark.parametrize("field", ["name", "description", "target_table", "source_query"])
def test_nul_character_is_422_not_a_server_error(client, field):
    # PostgreSQL text cannot hold NUL. Pydantic would accept it and the insert would fail (500).
    detail = detail_of(client.post(f"{BASE}/", json={**VALID, field: "a\x00b"}), 422)
    assert [(e["type"], e["loc"]) for e in detail] == [("value_error", ["body", field])]
    assert "NUL" in detail[0]["msg"]
