"""Quality gates: checks a load must pass before it is published.

The pipeline's checks (a dict, as stored by services.checks):
    min_rows            at least this many rows loaded
    max_drop_percent    the load may shrink the current target by at most this much
    allow_empty         an empty load may replace a non-empty target (refused by default)
    not_null_columns    columns that must hold no NULL
    unique_keys         column lists that must be unique (the target's own unique indexes are
                        enforced anyway: they are built on the shadow before the gates run)
    assertions          [{name, sql}]: user SQL that must return no rows. It sees the loaded rows as
                        the relation `loaded` and runs on the source connection (the least-privilege
                        login, READ ONLY, with the statement timeout), never on the loader's own.
Built-in gates are our SQL over the shadow on the target connection.
"""
from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from .load import LoadError


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    count: int | None  # the offending count (rows, duplicate keys), or the measured value
    detail: str

    def as_dict(self) -> dict:
        return {"gate": self.gate, "passed": self.passed, "count": self.count, "detail": self.detail}


class GateFailed(LoadError):
    def __init__(self, results: list[GateResult], subject: str = "the target keeps its previous contents") -> None:
        failed = [result for result in results if not result.passed]
        names = "; ".join(f"{result.gate}: {result.detail}" for result in failed)
        plural = "s" if len(failed) > 1 else ""
        super().__init__(f"Quality gate{plural} failed ({names}); {subject}")
        self.results = results


def builtin_gates(
    cursor,
    relation: sql.Composable,
    loaded_rows: int,
    checks: dict,
    columns: list[str],
    current_rows=None,
) -> list[GateResult]:
    """Run the built-in gates over relation (the shadow, or an incremental batch).

    current_rows: a callable returning the target's current row count, or None where a drop has
    no meaning (incremental mode never deletes)."""
    results: list[GateResult] = []
    _require_columns(checks, columns)
    min_rows = checks.get("min_rows")
    if min_rows is not None:
        results.append(GateResult(
            "min_rows", loaded_rows >= min_rows, loaded_rows,
            f"{loaded_rows} rows loaded, at least {min_rows} required",
        ))
    if current_rows is not None:
        max_drop = checks.get("max_drop_percent")
        if loaded_rows == 0 and not checks.get("allow_empty", False):
            current = current_rows()
            results.append(GateResult(
                "empty_load", current == 0, current,
                f"the load is empty and would replace {current} rows (allow_empty is off)"
                if current else "the load is empty and so is the target",
            ))
        if max_drop is not None:
            current = current_rows()
            drop = 100.0 * (current - loaded_rows) / current if current > loaded_rows else 0.0
            results.append(GateResult(
                "max_drop", drop <= max_drop, current - loaded_rows if current > loaded_rows else 0,
                f"{loaded_rows} rows would replace {current} ({drop:.1f}% fewer; at most {max_drop:g}% allowed)",
            ))
    not_null = checks.get("not_null_columns") or []
    if not_null:
        cursor.execute(sql.SQL("SELECT {} FROM {} AS loaded").format(
            sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {} IS NULL)").format(sql.Identifier(c)) for c in not_null),
            relation,
        ))
        for column, nulls in zip(not_null, cursor.fetchone()):
            results.append(GateResult(f"not_null({column})", nulls == 0, nulls, f"{nulls} rows have a NULL {column}"))
    for key in checks.get("unique_keys") or []:
        identifiers = sql.SQL(", ").join(map(sql.Identifier, key))
        cursor.execute(sql.SQL(
            "SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {} AS loaded GROUP BY {} HAVING count(*) > 1) d"
        ).format(relation, identifiers))
        keys, rows = cursor.fetchone()
        results.append(GateResult(
            f"unique({', '.join(key)})", keys == 0, keys,
            f"{keys} duplicated key values over {rows} rows",
        ))
    return results


def run_assertions(source_cursor, shadow: sql.Composable, assertions: list[dict]) -> list[GateResult]:
    """Each assertion in the source's READ ONLY transaction (opened by the caller); counts its rows."""
    results = []
    for assertion in assertions:
        name = assertion.get("name") or "assertion"
        statement = sql.SQL("WITH loaded AS (SELECT * FROM {}) SELECT count(*) FROM (\n{}\n) AS etl_violations").format(
            shadow, sql.SQL(assertion["sql"])
        )
        source_cursor.execute("SAVEPOINT etl_assertion")
        try:
            source_cursor.execute(statement)
            violations = source_cursor.fetchone()[0]
            source_cursor.execute("RELEASE SAVEPOINT etl_assertion")
        except psycopg2.Error as error:
            source_cursor.execute("ROLLBACK TO SAVEPOINT etl_assertion")
            message = (str(error).strip().splitlines() or [type(error).__name__])[0]
            results.append(GateResult(f"assertion({name})", False, None, f"the assertion failed to run: {message}"))
            continue
        results.append(GateResult(
            f"assertion({name})", violations == 0, violations, f"{violations} rows violate it",
        ))
    return results


def _require_columns(checks: dict, columns: list[str]) -> None:
    named = set(checks.get("not_null_columns") or [])
    for key in checks.get("unique_keys") or []:
        named.update(key)
    unknown = sorted(named - set(columns))
    if unknown:
        raise LoadError(
            f"quality gates name columns the target does not have: {', '.join(unknown)} "
            f"(target columns: {', '.join(columns)})"
        )


def gate_incremental_batch(cursor, checks: dict, rows: int, columns: list[str], primary_key: list[str],
                           incremental_key: str, staging: sql.Composable = sql.Identifier("etl_incoming"),
                           ) -> list[GateResult]:
    """The gates that mean something for a batch being merged, over the batch as it will be merged
    (the newest version of each primary key in etl_incoming). A drop has no meaning (incremental
    mode never deletes), and SQL assertions need a shadow the source login can read, which only
    full mode builds: neither runs here. Raises GateFailed before anything is merged."""
    keys = sql.SQL(", ").join(map(sql.Identifier, primary_key))
    batch = sql.SQL("(SELECT DISTINCT ON ({keys}) * FROM {staging} ORDER BY {keys}, {key} DESC)").format(
        keys=keys, key=sql.Identifier(incremental_key), staging=staging)
    results = builtin_gates(cursor, batch, rows, checks or {}, columns)
    if any(not result.passed for result in results):
        raise GateFailed(results, "nothing was merged and the watermark did not move")
    return results
