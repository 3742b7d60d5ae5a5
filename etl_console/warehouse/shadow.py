"""The shadow table a full load is built in, before it is published over the target.

A shadow lives in our own schema (SHADOW_SCHEMA), is named after its run (etl_shadow_<run id hex>)
and carries a marker comment, so it can never be mistaken for a user's table. While its load is
alive, the load's target connection holds a session-level advisory lock keyed by the shadow's OID:
a killed process's connection closes, the lock goes with it, and the next load's sweep drops the
orphan. Nothing that lacks the name, the marker and a free lock is ever dropped.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import psycopg2
from psycopg2 import errors as pg_errors
from psycopg2 import sql

from .load import LoadError

from .target import regclass_literal

log = logging.getLogger(__name__)

SHADOW_SCHEMA = "etl_console_shadow"
SHADOW_PREFIX = "etl_shadow_"
SHADOW_MARKER = "etl-console shadow"
# High 32 bits of the advisory lock key ('ETLS'); the low 32 bits are the shadow's OID.
_LOCK_NAMESPACE = 0x45544C53 << 32


@dataclass(frozen=True)
class ShadowIndex:
    """One of the target's indexes, rebuilt on the shadow under a temporary name."""

    target_name: str
    shadow_name: str
    constraint_name: str | None  # PK/UNIQUE/EXCLUDE constraint the index backs, renamed with it
    build_sql: sql.Composable
    unique: bool
    clustered: bool
    replica_identity: bool
    comment: str | None
    tablespace: str | None = None  # the target index's, unless the database's default


@dataclass(frozen=True)
class Shadow:
    oid: int
    name: str
    target_table: str  # schema.table

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(SHADOW_SCHEMA, self.name)


def shadow_name(run_id: uuid.UUID) -> str:
    return f"{SHADOW_PREFIX}{run_id.hex}"


def lock_key(oid: int) -> int:
    return _LOCK_NAMESPACE | oid


def create_shadow(cursor, target_table: str, run_id: uuid.UUID) -> Shadow:
    """Create the shadow (uncommitted) with the target's columns, types, defaults, NOT NULL and CHECK
    constraints, storage, compression, statistics targets and storage parameters; no indexes."""
    _ensure_schema(cursor)
    name = shadow_name(run_id)
    target = regclass_literal(target_table)
    cursor.execute(
        """
        SELECT c.relpersistence, c.reloptions, t.spcname
        FROM pg_class c LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
        WHERE c.oid = %s::regclass
        """,
        (target,),
    )
    persistence, options, tablespace = cursor.fetchone()
    statement = sql.SQL("CREATE {}TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED "
                        "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS)").format(
        sql.SQL("UNLOGGED " if persistence == "u" else ""),
        sql.Identifier(SHADOW_SCHEMA, name),
        sql.SQL(target),
    )
    if options:
        statement += sql.SQL(" WITH ({})").format(sql.SQL(", ").join(sql.SQL(option) for option in options))
    if tablespace:
        statement += sql.SQL(" TABLESPACE {}").format(sql.Identifier(tablespace))
    cursor.execute(statement)
    cursor.execute("SELECT %s::regclass::oid", (regclass_literal(f"{SHADOW_SCHEMA}.{name}"),))
    oid = cursor.fetchone()[0]
    cursor.execute(
        sql.SQL("COMMENT ON TABLE {} IS %s").format(sql.Identifier(SHADOW_SCHEMA, name)),
        (f"{SHADOW_MARKER} of {target_table} for run {run_id}",),
    )
    # Statistics targets are per column and LIKE does not copy them; ANALYZE of the shadow uses them.
    cursor.execute(
        """
        SELECT attname, attstattarget FROM pg_attribute
        WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attstattarget >= 0
        """,
        (target,),
    )
    for column, stattarget in cursor.fetchall():
        cursor.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET STATISTICS {}").format(
                sql.Identifier(SHADOW_SCHEMA, name), sql.Identifier(column), sql.Literal(stattarget)
            )
        )
    # Held by this session until it ends: while it is held, no sweep treats the shadow as an orphan.
    cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key(oid),))
    return Shadow(oid, name, target_table)


def target_indexes(cursor, target_table: str, shadow: Shadow) -> list[ShadowIndex]:
    """The target's indexes as statements that build them on the shadow under temporary names."""
    schema, _, table = target_table.partition(".")
    cursor.execute(
        """
        SELECT ci.relname, pg_get_indexdef(i.indexrelid), con.conname,
               CASE WHEN con.oid IS NOT NULL THEN pg_get_constraintdef(con.oid) END,
               i.indisunique, i.indisclustered, i.indisreplident, obj_description(i.indexrelid, 'pg_class'),
               format('INDEX %%I ON %%I.%%I USING ', ci.relname, %s, %s), con.contype, ci.reloptions, ts.spcname
        FROM pg_index i
        JOIN pg_class ci ON ci.oid = i.indexrelid
        LEFT JOIN pg_tablespace ts ON ts.oid = ci.reltablespace
        LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
             AND con.contype IN ('p', 'u', 'x')
        WHERE i.indrelid = %s::regclass
        ORDER BY ci.relname
        """,
        (schema, table, regclass_literal(target_table)),
    )
    indexes = []
    for number, row in enumerate(cursor.fetchall(), start=1):
        (index_name, index_def, constraint, constraint_def, unique, clustered, replident, comment, printed,
         constraint_type, index_options, tablespace) = row
        temporary = f"{shadow.name}_{number}"
        if constraint_type in ("p", "u") and index_options:
            constraint_def = _with_index_options(constraint_def, index_options)
        if constraint:
            build = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                shadow.identifier, sql.Identifier(temporary)
            ) + sql.SQL(constraint_def)
        else:
            if printed not in index_def:
                raise LoadError(f"cannot rebuild index {index_name} of {target_table} on the shadow: {index_def}")
            moved = sql.SQL("INDEX {} ON {} USING ").format(sql.Identifier(temporary), shadow.identifier)
            before, _, after = index_def.partition(printed)
            build = sql.SQL(before) + moved + sql.SQL(after)
        indexes.append(
            ShadowIndex(index_name, temporary, constraint, build, unique, clustered, replident, comment, tablespace)
        )
    return indexes


def _with_index_options(constraint_def: str, options: list[str]) -> str:
    """pg_get_constraintdef leaves out a PRIMARY KEY's or UNIQUE's index options (EXCLUDE's it prints);
    without them the rebuilt index differs (its fillfactor, say) and the rename exchange is refused.
    The WITH clause goes before the DEFERRABLE attributes."""
    head, attributes = constraint_def, ""
    for attribute in (" INITIALLY DEFERRED", " DEFERRABLE"):
        if head.endswith(attribute):
            head, attributes = head[: -len(attribute)], attribute + attributes
    return f"{head} WITH ({', '.join(options)}){attributes}"


def build_indexes(cursor, indexes: list[ShadowIndex]) -> None:
    """Neither pg_get_indexdef nor pg_get_constraintdef says where an index lives: each is built with
    default_tablespace set to its target index's ('' is the database's default), then it is restored."""
    cursor.execute("SELECT current_setting('default_tablespace')")
    previous = cursor.fetchone()[0]
    for index in indexes:
        cursor.execute("SELECT set_config('default_tablespace', %s, true)", (index.tablespace or "",))
        cursor.execute(index.build_sql)
    cursor.execute("SELECT set_config('default_tablespace', %s, true)", (previous,))


def grant_read(cursor, shadow: Shadow, role: str) -> bool:
    """Let the source login read the shadow (for the user's assertions). True if a grant was needed."""
    cursor.execute("SELECT has_table_privilege(%s, %s, 'SELECT')", (role, shadow.oid))
    if cursor.fetchone()[0]:
        return False
    # Concurrent GRANTs on one schema fail with "tuple concurrently updated": grant it once, under a lock.
    cursor.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, SHADOW_SCHEMA))
    if not cursor.fetchone()[0]:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('etl_console shadow schema grant'))")
        cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SHADOW_SCHEMA), sql.Identifier(role)))
    cursor.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(shadow.identifier, sql.Identifier(role)))
    return True


def revoke_read(cursor, shadow: Shadow, role: str) -> None:
    cursor.execute(sql.SQL("REVOKE SELECT ON {} FROM {}").format(shadow.identifier, sql.Identifier(role)))


def drop_shadow(cursor, shadow: Shadow) -> None:
    """Drop our own shadow (never CASCADE) and release its lock."""
    cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(shadow.identifier))
    cursor.execute("SELECT pg_advisory_unlock(%s)", (lock_key(shadow.oid),))


def sweep_orphans(connection) -> list[str]:
    """Drop shadows whose load is gone (no session holds their lock). Returns their names.

    Runs in its own short transactions on an autocommit-off connection, and leaves it idle."""
    dropped = []
    cursor = connection.cursor()
    cursor.execute(
        """
        SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s
          AND obj_description(c.oid, 'pg_class') LIKE %s
        """,
        (SHADOW_SCHEMA, SHADOW_PREFIX.replace("_", r"\_") + "%", SHADOW_MARKER + " of %"),
    )
    candidates = cursor.fetchall()
    connection.commit()
    for oid, name in candidates:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(oid),))
        if not cursor.fetchone()[0]:
            connection.commit()
            continue  # a live load owns it
        try:
            cursor.execute("SET LOCAL lock_timeout = '1s'")
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(SHADOW_SCHEMA, name)))
            connection.commit()
            dropped.append(name)
            log.info("dropped orphan shadow %s.%s", SHADOW_SCHEMA, name)
        except psycopg2.Error as error:  # something of a user's depends on it, or it is busy: leave it
            connection.rollback()
            log.warning("left orphan shadow %s.%s: %s", SHADOW_SCHEMA, name, str(error).strip())
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", (lock_key(oid),))
            connection.commit()
    return dropped


def _ensure_schema(cursor) -> None:
    cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SHADOW_SCHEMA,))
    if cursor.fetchone():
        return
    cursor.execute("SAVEPOINT etl_shadow_schema")
    try:
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SHADOW_SCHEMA)))
        cursor.execute(
            sql.SQL("COMMENT ON SCHEMA {} IS %s").format(sql.Identifier(SHADOW_SCHEMA)),
            ("etl-console: shadow tables of full loads in progress; each is dropped or published by its load",),
        )
    except pg_errors.UniqueViolation:  # a concurrent load created it first
        cursor.execute("ROLLBACK TO SAVEPOINT etl_shadow_schema")
    else:
        cursor.execute("RELEASE SAVEPOINT etl_shadow_schema")
