"""Publishing a built shadow over its target: two exchanges, and the lock both of them wait for.

* Rename exchange (nothing is bound to the target's OID): under ACCESS EXCLUSIVE, drop the old
  table, move the shadow into place, give its indexes and constraints their old names, and
  re-apply what a new table does not inherit (owner, grants, comment, RLS flags, replica identity,
  clustered index, index comments). It is catalog work only, so the lock is held for milliseconds.
  Before committing, a fingerprint of the new table is compared with the old one; any difference
  rolls the exchange back and the load falls back to the row exchange.
* Row exchange (views, materialized views, foreign keys, triggers, policies, publications, owned
  sequences, extended statistics, inheritance... reference the target by OID): the target stays
  the same table and its rows are replaced with ordinary MVCC DML from the shadow in one
  transaction, under EXCLUSIVE mode, which blocks other writers but never readers (their ACCESS
  SHARE does not conflict with it, so nobody queues behind it either).

Both wait for their lock with a short lock_timeout and retry with backoff, so a long-running
reader delays the publish (visibly) instead of making every new reader queue behind an
ACCESS EXCLUSIVE request.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from psycopg2 import errors as pg_errors
from psycopg2 import sql

from .shadow import Shadow, ShadowIndex
from .load import LoadError
from .target import regclass_literal, table_identifier

RENAME = "rename"
ROWS = "rows"


class ExchangeRefused(Exception):
    """The rename exchange could not reproduce the target exactly; the row exchange is used instead."""


@dataclass
class PublishReport:
    method: str
    reasons: list[str] = field(default_factory=list)  # why the row exchange was chosen
    attempts: int = 0  # lock attempts that timed out before the one that succeeded
    waited_s: float = 0.0  # time spent waiting for the publish lock, retries included
    locked_s: float = 0.0  # lock acquired → committed: how long the exchange held its lock
    rows: dict[str, int] = field(default_factory=dict)  # the row exchange's deleted/updated/inserted

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "lock": "ACCESS EXCLUSIVE" if self.method == RENAME else "EXCLUSIVE",
            "reasons": self.reasons,
            "lock_attempts": self.attempts + 1,
            "waited_s": round(self.waited_s, 4),
            "locked_ms": round(self.locked_s * 1000, 2),
            **({"rows": self.rows} if self.rows else {}),
        }


# Objects that may depend on the target and still allow a rename exchange: its own indexes, its own
# non-FK constraints, its column defaults, its row type and TOAST table. Anything else binds the OID.
_OID_DEPENDENTS = """
SELECT DISTINCT pg_describe_object(d.classid, d.objid, 0)
FROM pg_depend d
WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = %(t)s AND d.deptype IN ('n', 'a', 'i')
  AND d.classid <> 'pg_type'::regclass
  AND NOT (d.classid = 'pg_class'::regclass AND EXISTS (
        SELECT 1 FROM pg_class c WHERE c.oid = d.objid AND (c.relkind IN ('i', 't'))
          AND (c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = %(t)s)
               OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = c.oid AND i.indrelid = %(t)s))))
  AND NOT (d.classid = 'pg_attrdef'::regclass AND EXISTS (
        SELECT 1 FROM pg_attrdef ad WHERE ad.oid = d.objid AND ad.adrelid = %(t)s))
  AND NOT (d.classid = 'pg_constraint'::regclass AND EXISTS (
        SELECT 1 FROM pg_constraint c WHERE c.oid = d.objid AND c.conrelid = %(t)s AND c.contype <> 'f'))
  AND NOT (d.classid = 'pg_trigger'::regclass AND EXISTS (
        SELECT 1 FROM pg_trigger tg WHERE tg.oid = d.objid AND tg.tgisinternal))
UNION ALL
SELECT 'a table that is partitioned, a partition or inherited' FROM pg_class c
WHERE c.oid = %(t)s AND (c.relkind <> 'r' OR c.relispartition
      OR EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = c.oid OR inhparent = c.oid))
UNION ALL
SELECT DISTINCT 'its row type, used by ' || pg_describe_object(d.classid, d.objid, 0)
FROM pg_depend d
WHERE d.refclassid = 'pg_type'::regclass AND d.deptype = 'n'
  AND d.refobjid IN (SELECT reltype FROM pg_class WHERE oid = %(t)s
                     UNION SELECT typarray FROM pg_type WHERE oid = (SELECT reltype FROM pg_class WHERE oid = %(t)s))
UNION ALL
SELECT 'column privileges' WHERE EXISTS (
    SELECT 1 FROM pg_attribute WHERE attrelid = %(t)s AND attnum > 0 AND attacl IS NOT NULL)
UNION ALL
SELECT 'privileges granted by a role other than the owner' FROM pg_class c
WHERE c.oid = %(t)s AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantor <> c.relowner)
UNION ALL
SELECT 'a security label' WHERE EXISTS (
    SELECT 1 FROM pg_seclabel WHERE classoid = 'pg_class'::regclass AND objoid = %(t)s)
UNION ALL
SELECT 'a comment on a constraint' WHERE EXISTS (
    SELECT 1 FROM pg_description ds JOIN pg_constraint c ON c.oid = ds.objoid
    WHERE ds.classoid = 'pg_constraint'::regclass AND c.conrelid = %(t)s)
UNION ALL
SELECT 'membership of extension ' || e.extname FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
WHERE d.classid = 'pg_class'::regclass AND d.objid = %(t)s AND d.deptype = 'e'
"""

# What a reader or writer of the target can observe of the table itself, name-independent.
_FINGERPRINT = """
SELECT jsonb_build_object(
  'owner', c.relowner::regrole::text,
  'acl', (SELECT coalesce(jsonb_agg(a::text ORDER BY a::text), '[]')
          FROM unnest(coalesce(c.relacl, acldefault('r', c.relowner))) AS a),
  'persistence', c.relpersistence, 'options', c.reloptions,
  'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity, 'replica_identity', c.relreplident,
  'comment', obj_description(c.oid, 'pg_class'),
  'columns', (SELECT jsonb_agg(jsonb_build_array(
                  a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
                  a.attstattarget, a.attidentity, a.attgenerated, a.attcollation, a.attstorage,
                  a.attcompression, col_description(c.oid, a.attnum)) ORDER BY a.attnum)
              FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  'indexes', (SELECT coalesce(jsonb_agg(jsonb_build_array(
                  pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisreplident,
                  obj_description(i.indexrelid, 'pg_class')) ORDER BY pg_get_indexdef(i.indexrelid)), '[]')
              FROM pg_index i WHERE i.indrelid = c.oid),
  'constraints', (SELECT coalesce(jsonb_agg(con.conname || ' ' || pg_get_constraintdef(con.oid) ORDER BY con.conname), '[]')
                  FROM pg_constraint con WHERE con.conrelid = c.oid)
)
FROM pg_class c WHERE c.oid = %s
"""


def oid_dependents(cursor, target_table: str) -> list[str]:
    """What binds the target's OID (so a rename exchange would break or lose it); empty if nothing."""
    cursor.execute("SELECT %s::regclass::oid", (regclass_literal(target_table),))
    oid = cursor.fetchone()[0]
    cursor.execute(_OID_DEPENDENTS, {"t": oid})
    return sorted({row[0] for row in cursor.fetchall()})


def fingerprint(cursor, oid: int) -> dict:
    cursor.execute(_FINGERPRINT, (oid,))
    return cursor.fetchone()[0]


def wait_for_lock(
    connection,
    target_table: str,
    mode: str,
    lock_timeout_s: float,
    give_up_after_s: float,
    on_wait: Callable[[int, float, list[str]], None],
    purpose: str = "publish",
) -> tuple[int, float]:
    """Open a transaction that holds lock_sql's lock. Each attempt waits at most lock_timeout_s, so
    readers queue behind our request for no longer than that; between attempts we step back (with
    backoff and jitter) and let them through. Returns (failed attempts, seconds waited)."""
    cursor = connection.cursor()
    lock_sql = sql.SQL("LOCK TABLE {} IN {} MODE").format(table_identifier(target_table), sql.SQL(mode))
    started = time.monotonic()
    failed = 0
    while True:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", (f"{max(1, int(lock_timeout_s * 1000))}ms",))
        try:
            cursor.execute(lock_sql)
            cursor.execute("SELECT set_config('lock_timeout', '60s', true)")  # the exchange's own locks
            return failed, time.monotonic() - started
        except pg_errors.LockNotAvailable:
            connection.rollback()
        failed += 1
        waited = time.monotonic() - started
        holders = _lock_holders(cursor, target_table)
        connection.rollback()
        if waited >= give_up_after_s:
            raise LoadError(
                f"could not {purpose}: the target stayed locked by other sessions for {waited:.0f} s "
                f"({'; '.join(holders) or 'unknown holders'}); the target keeps its previous contents"
            )
        on_wait(failed, waited, holders)  # may raise to cancel (pause)
        time.sleep(min(1.0, 0.05 * 2 ** min(failed, 5)) * random.uniform(0.5, 1.0))


def _lock_holders(cursor, target_table: str) -> list[str]:
    cursor.execute(
        """
        SELECT a.pid, l.mode, coalesce(a.state, '?'),
               extract(epoch FROM clock_timestamp() - a.xact_start)::int, left(a.query, 60)
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.relation = %s::regclass AND l.granted AND l.pid <> pg_backend_pid()
        ORDER BY a.xact_start NULLS LAST LIMIT 3
        """,
        (regclass_literal(target_table),),
    )
    return [
        f"pid {pid} holds {mode} ({state}, transaction open {age} s: {query!r})"
        for pid, mode, state, age, query in cursor.fetchall()
    ]


def exchange_by_rename(cursor, shadow: Shadow, indexes: list[ShadowIndex], target_table: str) -> None:
    """Put the shadow in the target's place. The caller holds ACCESS EXCLUSIVE on the target and
    rolls the whole transaction back on any error (ExchangeRefused included)."""
    schema, _, table = target_table.partition(".")
    target = table_identifier(target_table)
    cursor.execute(
        """
        SELECT c.oid, pg_get_userbyid(c.relowner), c.relacl IS NOT NULL, obj_description(c.oid, 'pg_class'),
               c.relreplident, c.relrowsecurity, c.relforcerowsecurity
        FROM pg_class c WHERE c.oid = %s::regclass
        """,
        (regclass_literal(target_table),),
    )
    old_oid, owner, explicit_acl, comment, replica_identity, rls, force_rls = cursor.fetchone()
    cursor.execute(
        """
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
               a.is_grantable, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type)
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %s GROUP BY 1, 2
        """,
        (old_oid,),
    )
    grants = cursor.fetchall()
    cursor.execute(
        """
        SELECT a.attname, con.conname FROM pg_constraint con
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
        WHERE con.conrelid = %s AND con.contype = 'n'
        """,
        (old_oid,),
    )
    not_null_names = dict(cursor.fetchall())  # PostgreSQL 18 names NOT NULL constraints
    before = fingerprint(cursor, old_oid)

    cursor.execute(sql.SQL("DROP TABLE {} RESTRICT").format(target))
    cursor.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(shadow.identifier, sql.Identifier(schema)))
    cursor.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, shadow.name), sql.Identifier(table)))
    for index in indexes:
        if index.constraint_name:
            cursor.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                target, sql.Identifier(index.shadow_name), sql.Identifier(index.constraint_name)))
        else:
            cursor.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(schema, index.shadow_name), sql.Identifier(index.target_name)))
        if index.comment is not None:
            cursor.execute(sql.SQL("COMMENT ON INDEX {} IS %s").format(sql.Identifier(schema, index.target_name)),
                           (index.comment,))
        if index.clustered:
            cursor.execute(sql.SQL("ALTER TABLE {} CLUSTER ON {}").format(target, sql.Identifier(index.target_name)))
        if index.replica_identity:
            cursor.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY USING INDEX {}").format(
                target, sql.Identifier(index.target_name)))
    cursor.execute(
        """
        SELECT a.attname, con.conname FROM pg_constraint con
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
        WHERE con.conrelid = %s::regclass AND con.contype = 'n'
        """,
        (regclass_literal(target_table),),
    )
    for column, name in cursor.fetchall():
        wanted = not_null_names.get(column)
        if wanted and wanted != name:
            cursor.execute(sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                target, sql.Identifier(name), sql.Identifier(wanted)))
    cursor.execute(sql.SQL("COMMENT ON TABLE {} IS %s").format(target), (comment,))
    if replica_identity in ("f", "n"):
        cursor.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(
            target, sql.SQL("FULL" if replica_identity == "f" else "NOTHING")))
    if rls:
        cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(target))
    if force_rls:
        cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(target))
    cursor.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(target, sql.Identifier(owner)))
    if explicit_acl:
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(target))
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(target, sql.Identifier(owner)))
        for grantee, grantable, privileges in grants:
            cursor.execute(sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privileges), target, sql.SQL(grantee), sql.SQL(" WITH GRANT OPTION" if grantable else "")))

    after = fingerprint(cursor, shadow.oid)
    if after != before:
        differences = sorted(key for key in before if before.get(key) != after.get(key))
        shown = "; ".join(f"{key}: {before.get(key)!r} became {after.get(key)!r}" for key in differences)
        raise ExchangeRefused(f"the new table would differ from the old in {shown[:500]}")


def exchange_rows(cursor, shadow: Shadow, target_table: str, columns: list[str]) -> dict[str, int]:
    """Replace the target's rows with the shadow's, keeping the table (and everything bound to it).

    With a key (the primary key, or a NOT NULL unique index), only what changed is written: rows
    whose key left are deleted, changed rows updated, new keys inserted, so foreign keys into kept
    rows stay satisfied and unchanged rows leave no dead tuples. Without one: delete all, insert all.
    The caller holds EXCLUSIVE on the target (no other writer interleaves)."""
    target = table_identifier(target_table)
    key = [column for column in _merge_key(cursor, target_table) if column in columns]
    if not key or len(key) != len(_merge_key(cursor, target_table)):
        cursor.execute(sql.SQL("DELETE FROM {}").format(target))
        deleted = cursor.rowcount
        cursor.execute(sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM {}").format(
            target, shadow.identifier, cols=sql.SQL(", ").join(map(sql.Identifier, columns))))
        return {"deleted": deleted, "updated": 0, "inserted": cursor.rowcount}

    def joined(left: str, right: str) -> sql.Composable:
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}.{}").format(sql.Identifier(left), sql.Identifier(c), sql.Identifier(right), sql.Identifier(c))
            for c in key
        )

    cursor.execute(sql.SQL("DELETE FROM {} AS t WHERE NOT EXISTS (SELECT 1 FROM {} AS s WHERE {})").format(
        target, shadow.identifier, joined("s", "t")))
    deleted = cursor.rowcount
    others = [column for column in columns if column not in key]
    updated = 0
    if others:
        # Compared as text: every type has an output function, not every type has equality (json).
        as_text = lambda alias: sql.SQL(", ").join(  # noqa: E731
            sql.SQL("{}.{}::text").format(sql.Identifier(alias), sql.Identifier(c)) for c in others)
        cursor.execute(sql.SQL(
            "UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND ROW({}) IS DISTINCT FROM ROW({})"
        ).format(
            target,
            sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in others),
            shadow.identifier, joined("t", "s"), as_text("t"), as_text("s"),
        ))
        updated = cursor.rowcount
    cursor.execute(sql.SQL(
        "INSERT INTO {} ({cols}) SELECT {scols} FROM {} AS s WHERE NOT EXISTS (SELECT 1 FROM {} AS t WHERE {})"
    ).format(
        target, shadow.identifier, target, joined("t", "s"),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        scols=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns),
    ))
    return {"deleted": deleted, "updated": updated, "inserted": cursor.rowcount}


def _merge_key(cursor, target_table: str) -> list[str]:
    """The primary key, else the first unique, non-partial, expression-free index on NOT NULL columns."""
    cursor.execute(
        """
        SELECT array_agg(a.attname ORDER BY k.position)
        FROM pg_index i
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
        GROUP BY i.indexrelid, i.indisprimary
        HAVING bool_and(a.attnotnull)
        ORDER BY i.indisprimary DESC, i.indexrelid
        LIMIT 1
        """,
        (regclass_literal(target_table),),
    )
    row = cursor.fetchone()
    return list(row[0]) if row else []
