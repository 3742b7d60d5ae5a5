"""The deployment stack (gunicorn ×4 + `etl-console worker` + nginx), started once for tests/deploy."""
from __future__ import annotations

import pytest

from .stack import nginx_binary, scratch_database, start_stack


@pytest.fixture(scope="package")
def stack(server_url, tmp_path_factory):
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx; .ci/run installs it)")
    with scratch_database(server_url) as url:  # its worker must not run the in-process tests' runs
        running = start_stack(
            tmp_path_factory.mktemp("deploy-stack"),
            url,
            workers=4,
            max_requests=150,  # small, so that the suite itself recycles web workers under load
        )
        try:
            yield running
        finally:
            running.stop()
