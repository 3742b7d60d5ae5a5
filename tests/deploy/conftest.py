"""The deployment stack (gunicorn ×4 + `etl-console worker` + nginx), started once for tests/deploy."""
from __future__ import annotations

import pytest

from .stack import nginx_binary, start_stack


@pytest.fixture(scope="package")
def stack(database_url, tmp_path_factory):
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx; .ci/run installs it)")
    running = start_stack(
        tmp_path_factory.mktemp("deploy-stack"),
        database_url,
        workers=4,
        max_requests=150,  # small, so that the suite itself recycles web workers under load
    )
    yield running
    running.stop()
