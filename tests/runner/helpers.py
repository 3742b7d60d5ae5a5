"""Source queries and checks shared by the runner tests."""
from __future__ import annotations


def slow_film_query(rows: int, sleep_every: int, sleep_s: float) -> str:
    """A film_dim-shaped source that sleeps sleep_s every sleep_every rows (server side)."""
    return (
        "SELECT md5('slow' || i)::uuid AS film_id, 'film ' || i AS title, (i % 10)::float8 AS rating "
        f"FROM generate_series(1, {rows}) AS i "
        f"WHERE CASE WHEN i % {sleep_every} = 0 THEN pg_sleep({sleep_s}) IS NOT NULL ELSE true END"
    )


def film_rows_query(rows: int, tag: str = "new") -> str:
    return (
        f"SELECT md5('{tag}' || i)::uuid AS film_id, '{tag} ' || i AS title, 1.0::float8 AS rating "
        f"FROM generate_series(1, {rows}) AS i"
    )


def target_count(sql, table: str = "analytics.film_dim") -> int:
    return sql(f"SELECT count(*) FROM {table}")[0][0]
