"""Source-versus-target reconciliation over the target's primary key, computed inside PostgreSQL.

One READ ONLY statement: the keys of the source query and of the target, their counts, and the keys
on one side only (counts and a sample), with set operations. Requires the source and the target in
the same database (the default), which is what lets one snapshot see both.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg2
from psycopg2 import sql

from .source import open_read_only, source_error
from .load import LoadError
from .target import primary_key_columns, table_identifier

SAMPLE_SIZE = 10


@dataclass
class Reconciliation:
    key: list[str]
    source_rows: int
    target_rows: int
    missing_in_target: int
    extra_in_target: int
    missing_sample: list
    extra_sample: list
    match: bool

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, key: list, source_rows: int, target_rows: int, missing: int, extra: int, missing_sample: list,
           extra_sample: list) -> "Reconciliation":
        """The counts and samples, and whether they match (nothing missing or extra, counts equal)."""
        return cls(key, source_rows, target_rows, missing, extra, missing_sample, extra_sample,
                   match=missing == 0 and extra == 0 and source_rows == target_rows)


def reconcile(
    dsn: str, query: str, target_table: str, statement_timeout_s: float, source_role: str | None = None
) -> Reconciliation:
    connection = psycopg2.connect(dsn, application_name="etl-console reconcile")
    try:
        cursor = open_read_only(connection, statement_timeout_s, source_role)
        key = primary_key_columns(cursor, target_table)
        if not key:
            raise LoadError(f"target {target_table} has no primary key to reconcile on")
        keys = sql.SQL(", ").join(map(sql.Identifier, key))
        statement = sql.SQL(
            """
            WITH s AS MATERIALIZED (SELECT {keys} FROM (
{query}
                 ) AS etl_source),
                 t AS MATERIALIZED (SELECT {keys} FROM {target}),
                 missing AS (SELECT {keys} FROM s EXCEPT SELECT {keys} FROM t),
                 extra AS (SELECT {keys} FROM t EXCEPT SELECT {keys} FROM s)
            SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM t),
                   (SELECT count(*) FROM missing), (SELECT count(*) FROM extra),
                   (SELECT coalesce(json_agg(m), '[]') FROM (SELECT * FROM missing LIMIT {n}) m),
                   (SELECT coalesce(json_agg(e), '[]') FROM (SELECT * FROM extra LIMIT {n}) e)
            """
        ).format(keys=keys, query=sql.SQL(query), target=table_identifier(target_table), n=sql.Literal(SAMPLE_SIZE))
        try:
            cursor.execute(statement)
        except psycopg2.Error as error:
            raise source_error(error) from None
        source_rows, target_rows, missing, extra, missing_sample, extra_sample = cursor.fetchone()
        cursor.execute("COMMIT")
    finally:
        connection.close()
    return Reconciliation.of(key, source_rows, target_rows, missing, extra, missing_sample, extra_sample)
