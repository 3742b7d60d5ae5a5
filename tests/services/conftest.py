"""Fixtures for calling services directly, as the web layer and the runner do."""
from __future__ import annotations

import pytest

from etl_console.extensions import etl_of


@pytest.fixture
def engine(app):
    """The app's metadata engine: services get their sessions and connections from it."""
    return etl_of(app).database.engine
