"""Save-time checks of a pipeline's source query, with PostgreSQL's own parser (pglast).

This is the first, friendly line of defence, not the boundary: at run time the query runs as the
least-privilege source login, in a READ ONLY transaction with a statement_timeout, so anything that
slips past here still cannot read what that login was not granted, write, or run forever.
"""
from __future__ import annotations

from pglast import ast, parse_sql
from pglast.parser import ParseError

from .errors import InvalidSourceQuery

_WRITING_NODES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
# Functions that change server or session state, reach outside the query's data, or run SQL handed to
# them as a string. Only a friendly first line (a clear 400 at save): the boundary is the source
# login's privileges (etl_console/db/source_login.py), because there will always be another function.
_FORBIDDEN_FUNCTIONS = frozenset(
    {
        "set_config",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_notify",
        "lo_import",
        "lo_export",
        "lo_from_bytea",
        "lo_put",
        "lo_create",
        "lo_creat",
        "lo_unlink",
        "dblink",
        "dblink_exec",
        "ts_stat",
        "ts_rewrite",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
    }
)
# pg_advisory_lock, pg_try_advisory_xact_lock_shared, …: a source query must not hold locks others wait on.
_FORBIDDEN_PREFIXES = ("pg_advisory", "pg_try_advisory")


def check_source_query(sql: str) -> str:
    """Return the query without trailing semicolons, or raise InvalidSourceQuery saying why."""
    if not sql or not sql.strip():
        raise InvalidSourceQuery("source_query must not be empty")
    try:
        statements = parse_sql(sql)
    except ParseError as error:
        raise InvalidSourceQuery(f"source_query is not valid SQL: {error}") from None
    if len(statements) != 1:
        raise InvalidSourceQuery(
            f"source_query must be a single SELECT or WITH statement, found {len(statements)} statements"
        )
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__.removesuffix("Stmt").upper()
        raise InvalidSourceQuery(f"source_query must be a SELECT or WITH statement, not {kind}")
    for node in _walk(statement):
        if isinstance(node, _WRITING_NODES):
            raise InvalidSourceQuery("source_query must not modify data (found a writing WITH clause)")
        if isinstance(node, ast.IntoClause):
            raise InvalidSourceQuery("source_query must not use SELECT ... INTO")
        if isinstance(node, ast.LockingClause):
            raise InvalidSourceQuery("source_query must not lock rows (FOR UPDATE/SHARE)")
        if isinstance(node, ast.FuncCall):
            name = node.funcname[-1].sval.lower()
            if name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES):
                raise InvalidSourceQuery(f"source_query must not call {name}()")
    return sql.strip().rstrip(";").rstrip()


def _walk(node):
    """Every AST node below node, depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Node):
            yield current
            stack.extend(getattr(current, attribute) for attribute in current)
        elif isinstance(current, (tuple, list)):
            stack.extend(current)
