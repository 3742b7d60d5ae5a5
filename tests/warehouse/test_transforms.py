"""The built-in transforms, one by one, on Arrow batches: config schemas, column rules, values."""
from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest

from etl_console.transforms import ColumnsRefused, TransformConfigInvalid, row_transform, transform_class


def make(kind: str, config: dict, columns: list[str]):
    transform_type = transform_class(kind)
    transform = transform_type(transform_type.load_config(config))
    out_columns = transform.prepare(columns)
    return transform, out_columns


def run(kind: str, config: dict, data: dict, *more: dict) -> dict:
    """Apply to one or more batches (then finish) and return the output as a dict of lists."""
    transform, _ = make(kind, config, list(data))
    outputs = [transform.apply(pa.RecordBatch.from_pydict(batch)) for batch in (data, *more)]
    held = transform.finish()
    outputs += [held] if held is not None else []
    return pa.Table.from_batches([o for o in outputs if o.num_rows] or outputs[:1]).to_pydict()


def test_select_and_rename():
    assert run("select", {"columns": ["b", "a"]}, {"a": [1], "b": [2], "c": [3]}) == {"b": [2], "a": [1]}
    assert run("rename", {"columns": {"a": "x"}}, {"a": [1], "b": [2]}) == {"x": [1], "b": [2]}
    with pytest.raises(ColumnsRefused, match="two columns named b"):
        make("rename", {"columns": {"a": "b"}}, ["a", "b"])
    with pytest.raises(ColumnsRefused, match="no column z"):
        make("select", {"columns": ["z"]}, ["a"])
    with pytest.raises(TransformConfigInvalid, match="columns"):
        make("select", {"columns": []}, ["a"])


def test_cast():
    out = run("cast", {"columns": {"n": "integer", "f": "float", "b": "boolean", "d": "date", "x": "numeric"}},
              {"n": ["1", None, "-3"], "f": ["1.5", "2", None], "b": ["t", "No", None], "d": ["2024-02-29", None, "1999-01-01"],
               "x": ["1.50", "  2 ", None]})
    assert out["n"] == [1, None, -3] and out["f"] == [1.5, 2.0, None] and out["b"] == [True, False, None]
    assert [str(d) if d else d for d in out["d"]] == ["2024-02-29", None, "1999-01-01"]
    assert out["x"] == ["1.50", "2", None]
    with pytest.raises(ValueError, match="column n to integer"):
        run("cast", {"columns": {"n": "integer"}}, {"n": ["1", "one"]})
    with pytest.raises(ValueError, match="'1,5' is not a number"):
        run("cast", {"columns": {"n": "numeric"}}, {"n": ["1,5"]})
    with pytest.raises(TransformConfigInvalid, match="columns.n"):
        make("cast", {"columns": {"n": "money"}}, ["n"])


def test_normalize_text():
    data = {"t": ["  Hello \t  World  ", None, "   ", "ÉCOLE"]}
    assert run("normalize_text", {"columns": ["t"]}, data)["t"] == ["Hello \t  World", None, "", "ÉCOLE"]
    assert run("normalize_text", {"columns": ["t"], "collapse_whitespace": True, "case": "lower", "empty_as_null": True},
               data)["t"] == ["hello world", None, None, "école"]
    assert run("normalize_text", {"columns": ["t"], "case": "title"}, {"t": ["the big SLEEP"]})["t"] == ["The Big Sleep"]


def test_fill_nulls():
    out = run("fill_nulls", {"values": {"r": 0, "t": "untitled"}}, {"r": [1.5, None], "t": [None, "x"]})
    assert out == {"r": [1.5, 0.0], "t": ["untitled", "x"]}
    with pytest.raises(ValueError, match="does not fit"):
        run("fill_nulls", {"values": {"r": "zero"}}, {"r": pa.array([1, None], pa.int64())})


@pytest.mark.parametrize("operator, value, kept", [
    ("eq", 2, [2]), ("ne", 2, [1, 3]), ("lt", 2, [1]), ("le", 2, [1, 2]), ("gt", 2, [3]), ("ge", 2, [2, 3]),
    ("in", [1, 3], [1, 3]), ("not_in", [1, 3], [2]), ("is_null", None, [None]), ("not_null", None, [1, 2, 3]),
])
def test_filter_numbers(operator, value, kept):
    assert run("filter", {"column": "n", "operator": operator, "value": value}, {"n": [1, 2, 3, None]})["n"] == kept


def test_filter_text_and_refusals():
    data = {"t": ["apple pie", "banana", None, "pineapple"]}
    assert run("filter", {"column": "t", "operator": "contains", "value": "apple"}, data)["t"] == ["apple pie", "pineapple"]
    assert run("filter", {"column": "t", "operator": "starts_with", "value": "b"}, data)["t"] == ["banana"]
    assert run("filter", {"column": "t", "operator": "ends_with", "value": "pie"}, data)["t"] == ["apple pie"]
    with pytest.raises(TransformConfigInvalid, match="value: is_null takes no value"):
        make("filter", {"column": "t", "operator": "is_null", "value": 1}, ["t"])
    with pytest.raises(TransformConfigInvalid, match="operator"):
        make("filter", {"column": "t", "operator": "__import__", "value": "os"}, ["t"])
    with pytest.raises(ValueError, match="does not fit column n"):
        run("filter", {"column": "n", "operator": "eq", "value": "two"}, {"n": [1, 2]})


def test_dedupe_keeps_first_or_last_by_order_across_batches():
    first = {"k": ["a", "b", "a"], "o": [5, 1, 2], "v": ["a5", "b1", "a2"]}
    second = {"k": ["b", "c", "a"], "o": [7, None, 9], "v": ["b7", "c-", "a9"]}
    last = run("dedupe", {"keys": ["k"], "order_by": "o", "keep": "last"}, first, second)
    assert sorted(zip(last["k"], last["v"])) == [("a", "a9"), ("b", "b7"), ("c", "c-")]
    earliest = run("dedupe", {"keys": ["k"], "order_by": "o", "keep": "first"}, first, second)
    assert sorted(zip(earliest["k"], earliest["v"])) == [("a", "a2"), ("b", "b1"), ("c", "c-")]
    arrival = run("dedupe", {"keys": ["k"]}, first, second)  # streams: first seen wins
    assert list(zip(arrival["k"], arrival["v"])) == [("a", "a5"), ("b", "b1"), ("c", "c-")]
    arrival_last = run("dedupe", {"keys": ["k"], "keep": "last"}, first, second)
    assert sorted(zip(arrival_last["k"], arrival_last["v"])) == [("a", "a9"), ("b", "b7"), ("c", "c-")]


def test_dedupe_compacts_many_batches():
    transform, _ = make("dedupe", {"keys": ["k"], "order_by": "o", "keep": "last"}, ["k", "o"])
    for start in range(0, 300_000, 10_000):
        transform.apply(pa.RecordBatch.from_pydict({"k": [i % 1000 for i in range(start, start + 10_000)],
                                                    "o": list(range(start, start + 10_000))}))
        assert transform._held_rows <= 2 * 1000 + 65536 + 10_000  # compacted as it goes
    out = transform.finish().to_pydict()
    assert sorted(out["k"]) == list(range(1000)) and min(out["o"]) == 299_000


def test_hash_is_a_keyed_hmac_from_the_environment(monkeypatch):
    monkeypatch.setenv("ETL_TEST_PII_KEY", "s3cret")
    out = run("hash", {"columns": ["email"], "secret_env": "ETL_TEST_PII_KEY"}, {"email": ["a@b.c", None, "a@b.c"]})
    expected = hmac.new(b"s3cret", b"a@b.c", hashlib.sha256).hexdigest()
    assert out["email"] == [expected, None, expected]
    monkeypatch.delenv("ETL_TEST_PII_KEY")
    with pytest.raises(ValueError, match="ETL_TEST_PII_KEY .* is not set"):
        run("hash", {"columns": ["email"], "secret_env": "ETL_TEST_PII_KEY"}, {"email": ["x"]})
    with pytest.raises(TransformConfigInvalid, match="secret_env"):
        make("hash", {"columns": ["email"], "secret_env": "$(rm -rf)"}, ["email"])


def test_mask():
    out = run("mask", {"columns": ["p"], "keep_last": 4}, {"p": ["alice@example.com", "abc", None, ""]})
    assert out["p"] == ["*************.com", "abc", None, ""]
    assert run("mask", {"columns": ["p"], "keep_last": 0, "mask_char": "#"}, {"p": ["héllo"]})["p"] == ["#####"]


def test_parse_json():
    data = {"id": [1, 2, 3], "doc": ['{"a": {"b": 7}, "tags": ["x"], "ok": true}', None, '{"a": null}']}
    transform, columns = make("parse_json", {"column": "doc", "fields": {"b": "a.b", "tags": "tags", "ok": "ok",
                                                                        "first_tag": "tags.0"}}, ["id", "doc"])
    assert columns == ["id", "b", "tags", "ok", "first_tag"]
    out = transform.apply(pa.RecordBatch.from_pydict(data)).to_pydict()
    assert out == {"id": [1, 2, 3], "b": ["7", None, None], "tags": ['["x"]', None, None], "ok": ["true", None, None],
                   "first_tag": ["x", None, None]}
    with pytest.raises(ValueError, match="row 1 of the batch: column doc is not JSON"):
        run("parse_json", {"column": "doc", "fields": {"b": "a"}}, {"doc": ["{nope"]})
    assert run("parse_json", {"column": "doc", "fields": {"b": "a"}, "on_error": "null"}, {"doc": ["{nope"]}) == {"b": [None]}
    with pytest.raises(ColumnsRefused, match="already exist: id"):
        make("parse_json", {"column": "doc", "fields": {"id": "a"}}, ["id", "doc"])


def test_row_function_form():
    @row_transform(output_columns=lambda columns: [*columns, "length"])
    def title_length(row):
        """Adds the title's length; drops untitled rows."""
        if row["title"] is None:
            return None
        return {**row, "length": len(row["title"])}

    transform = title_length(title_length.load_config({}))
    assert transform.prepare(["title"]) == ["title", "length"]
    out = transform.apply(pa.RecordBatch.from_pydict({"title": ["ab", None, "xyz"]})).to_pydict()
    assert out == {"title": ["ab", "xyz"], "length": [2, 3]}
    assert title_length.__doc__.startswith("Adds the title's length")
