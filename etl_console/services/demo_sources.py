"""The demo's "production" database: the contract's sources (content, ugc) in a database of their own
beside the warehouse, read through a named connection with a least-privilege login, the way a real
deployment reads its admin panel's and UGC service's databases."""
from __future__ import annotations

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from ..config import Config
from ..db.engine import Database, libpq_dsn
from ..db.secret_box import box_for
from ..db.source_login import local_password, provision_source_login
from ..warehouse.demo import load_demo_data
from . import connections as connection_service
from .errors import ConnectionNotFound

PRODUCTION_DATABASE = "etl_production"
PRODUCTION_LOGIN = "etl_production_reader"
PRODUCTION_CONNECTION = "production"


def ensure_production_source(
    database: Database,
    config: Config,
    films: int | None,
    ratings: int | None,
    *,
    database_name: str = PRODUCTION_DATABASE,
    connection_name: str = PRODUCTION_CONNECTION,
) -> str:
    """Create (or keep) the production database on the warehouse's server, its demo rows, its reader
    login and the connection to it; idempotent. Returns the connection's name."""
    admin = psycopg2.connect(database.warehouse_dsn, application_name="etl-console demo")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database_name,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name)))
    finally:
        admin.close()
    production = make_url(database.warehouse_url).set(database=database_name)
    production_dsn = libpq_dsn(production.render_as_string(hide_password=False))
    load_demo_data(production_dsn, films, ratings)
    password = local_password(config.data_dir, "production_login_password")
    provision_source_login(production_dsn, login=PRODUCTION_LOGIN, password=password, schemas=("content", "ugc"),
                           tables=(), revoke_public_functions=True)
    with database.sessions.begin() as session:
        try:
            connection_service.find_connection(session, connection_name)
        except ConnectionNotFound:
            connection_service.create_connection(session, box_for(config), {
                "name": connection_name,
                "description": "The demo's production database (content, ugc), read-only login",
                "host": production.host or production.query["host"],
                "port": production.port or 5432,
                "database": database_name,
                "user": PRODUCTION_LOGIN,
                "password": password,
            })
        _ensure_warehouse_connection(session, database, config)
    return connection_name


WAREHOUSE_CONNECTION = "warehouse"


def _ensure_warehouse_connection(session, database: Database, config: Config) -> None:
    """The warehouse itself, read by its own least-privilege source login: with the demo's default
    source being "production", a pipeline that names this connection loads in-database."""
    if database.source_url is None:
        return
    try:
        connection_service.find_connection(session, WAREHOUSE_CONNECTION)
        return
    except ConnectionNotFound:
        pass
    login = make_url(database.source_url)
    warehouse = make_url(database.warehouse_url)
    connection_service.create_connection(session, box_for(config), {
        "name": WAREHOUSE_CONNECTION,
        "description": "The warehouse itself (analytics and the demo's copy of content, ugc), read-only login: "
                       "loads from it run inside PostgreSQL",
        "host": warehouse.host or warehouse.query["host"],
        "port": warehouse.port or 5432,
        "database": warehouse.database,
        "user": login.username,
        "password": login.password,
    })
