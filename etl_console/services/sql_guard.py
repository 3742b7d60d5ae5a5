"""Save-time checks of a pipeline's source query, with PostgreSQL's own parser (pglast).

This is the first of two guards: at run time the query also runs in a READ ONLY transaction with a
statement_timeout, so anything that slips past here still cannot write or run forever.
"""
from __future__ import annotations

from pglast import ast, parse_sql
from pglast.parser import ParseError

from .errors import InvalidSourceQuery

_WRITING_NODES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
# Functions that change server or session state, or reach outside the query's data.
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
        "lo_import",
        "lo_export",
        "dblink",
        "dblink_exec",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
    }
)


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
            if name in _FORBIDDEN_FUNCTIONS:
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
