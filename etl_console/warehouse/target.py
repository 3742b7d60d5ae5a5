"""What the loader needs to know about a target table, and how to set its indexes aside and back."""
from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from .load import LoadError


@dataclass(frozen=True)
class Column:
    name: str
    not_null: bool
    has_default: bool


@dataclass(frozen=True)
class IndexDefinition:
    """A droppable index: either a plain index or the index behind a PK/UNIQUE/EXCLUDE constraint."""

    index_name: str
    index_sql: str
    constraint_name: str | None
    constraint_sql: str | None
    clustered: bool
    replica_identity: bool
    comment: str | None


def table_identifier(qualified_name: str) -> sql.Identifier:
    schema, _, table = qualified_name.partition(".")
    return sql.Identifier(schema, table)


def target_columns(cursor, qualified_name: str) -> list[Column]:
    cursor.execute("SELECT to_regclass(%s)", (_regclass_literal(qualified_name),))
    if cursor.fetchone()[0] is None:
        raise LoadError(f"target table {qualified_name} does not exist")
    cursor.execute(
        """
        SELECT a.attname, a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
        FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attgenerated = ''
        ORDER BY a.attnum
        """,
        (_regclass_literal(qualified_name),),
    )
    return [Column(name, not_null, has_default) for name, not_null, has_default in cursor.fetchall()]


def check_columns(qualified_name: str, source: list[str], target: list[Column]) -> None:
    """Match by name; say exactly which columns are wrong."""
    duplicates = sorted({name for name in source if source.count(name) > 1})
    if duplicates:
        raise LoadError(f"source query returns duplicate column names: {', '.join(duplicates)}")
    target_names = {column.name for column in target}
    unknown = [name for name in source if name not in target_names]
    required = [c.name for c in target if c.not_null and not c.has_default and c.name not in source]
    problems = []
    if unknown:
        problems.append(f"source columns not in target {qualified_name}: {', '.join(unknown)}")
    if required:
        problems.append(f"target columns missing from the source query: {', '.join(required)}")
    if problems:
        expected = ", ".join(column.name for column in target)
        raise LoadError(f"column mismatch: {'; '.join(problems)} (target columns: {expected})")


def droppable_indexes(cursor, qualified_name: str) -> list[IndexDefinition]:
    """Indexes we may drop for the load and rebuild after it, inside the same transaction.

    An index that a foreign key elsewhere depends on stays in place (dropping it would need CASCADE
    and lose that key), and so does every index of a partitioned table.
    """
    cursor.execute(
        """
        SELECT ci.relname, pg_get_indexdef(i.indexrelid), con.conname,
               CASE WHEN con.oid IS NOT NULL THEN pg_get_constraintdef(con.oid) END,
               i.indisclustered, i.indisreplident, obj_description(i.indexrelid, 'pg_class')
        FROM pg_index i
        JOIN pg_class ci ON ci.oid = i.indexrelid
        JOIN pg_class ct ON ct.oid = i.indrelid
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
             AND con.contype IN ('p', 'u', 'x')
        WHERE i.indrelid = %s::regclass AND ct.relkind = 'r'
          AND NOT EXISTS (SELECT 1 FROM pg_constraint fk
                          WHERE fk.contype = 'f' AND fk.conindid = i.indexrelid)
        ORDER BY ci.relname
        """,
        (_regclass_literal(qualified_name),),
    )
    return [IndexDefinition(*row) for row in cursor.fetchall()]


def drop_indexes(cursor, qualified_name: str, indexes: list[IndexDefinition]) -> None:
    schema = qualified_name.partition(".")[0]
    for index in indexes:
        if index.constraint_name:
            cursor.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    table_identifier(qualified_name), sql.Identifier(index.constraint_name)
                )
            )
        else:
            cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, index.index_name)))


def restore_indexes(cursor, qualified_name: str, indexes: list[IndexDefinition]) -> None:
    table = table_identifier(qualified_name)
    schema = qualified_name.partition(".")[0]
    for index in indexes:
        if index.constraint_name:
            cursor.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(table, sql.Identifier(index.constraint_name))
                + sql.SQL(index.constraint_sql)
            )
        else:
            cursor.execute(index.index_sql)
        name = sql.Identifier(schema, index.index_name)
        if index.clustered:
            cursor.execute(sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(table, sql.Identifier(index.index_name)))
        if index.replica_identity:
            cursor.execute(
                sql.SQL("ALTER TABLE {} REPLICA IDENTITY USING INDEX {}").format(
                    table, sql.Identifier(index.index_name)
                )
            )
        if index.comment is not None:
            cursor.execute(sql.SQL("COMMENT ON INDEX {} IS %s").format(name), (index.comment,))


def regclass_literal(qualified_name: str) -> str:
    """schema.table as a quoted literal for ::regclass casts."""
    schema, _, table = qualified_name.partition(".")
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))


_regclass_literal = regclass_literal


def primary_key_columns(cursor, qualified_name: str) -> list[str]:
    cursor.execute(
        """
        SELECT a.attname
        FROM pg_constraint c
        JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, position) ON true
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
        WHERE c.conrelid = %s::regclass AND c.contype = 'p'
        ORDER BY k.position
        """,
        (_regclass_literal(qualified_name),),
    )
    return [row[0] for row in cursor.fetchall()]
