"""Fixtures for calling services directly, as the web layer and the runner do."""
from __future__ import annotations

import pytest


@pytest.fixture
def engine(app):
    """The app's metadata engine: services get their sessions and connections from it."""
    return app.extensions["etl"].database.engine
