"""etl-console: a pipeline-management service for SQL ETL."""
from .app import create_app

__all__ = ["create_app"]
