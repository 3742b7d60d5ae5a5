"""The Dockerfile and docker-compose.yml cannot be built here (no Docker engine); keep them consistent
with the files the deployment test does run: gunicorn.conf.py, wsgi.py, deploy/nginx.conf, setup.cfg."""
from __future__ import annotations

import configparser
import re

from .stack import REPO


def read(name: str) -> str:
    return (REPO / name).read_text()


def pins(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_constraints_pin_every_setup_cfg_requirement_at_the_same_version():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    required = pins(setup["options"]["install_requires"].splitlines())
    constrained = pins(read("deploy/constraints.txt").splitlines())
    assert required, "no pins read from setup.cfg"
    for name, version in required.items():
        assert constrained.get(name) == version, f"deploy/constraints.txt: {name} should be =={version}"
    assert "prometheus-client" in required


def test_dockerfile_runs_the_tested_gunicorn_setup():
    dockerfile = read("Dockerfile")
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS app$", dockerfile, re.M)
    assert "python:3.11-slim" in dockerfile
    assert re.search(r"^USER etl$", dockerfile, re.M), "the app must not run as root"
    assert "HEALTHCHECK" in dockerfile and "/api/v1/health" in dockerfile
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile
    assert "COPY gunicorn.conf.py wsgi.py ./" in dockerfile
    assert "-c deploy/constraints.txt" in dockerfile
    # nginx stage: the sample config and the static files where that config looks for them
    assert "COPY deploy/nginx.conf /etc/nginx/nginx.conf" in dockerfile
    alias = re.search(r"alias (\S+);", read("deploy/nginx.conf")).group(1)
    assert f"COPY static {alias.rstrip('/')}" in dockerfile
    # the ETL_BIND port is the one nginx proxies to, and the one the health check asks
    port = re.search(r"ETL_BIND=0\.0\.0\.0:(\d+)", dockerfile).group(1)
    assert f"server app:{port};" in read("deploy/nginx.conf")
    assert f"127.0.0.1:{port}/api/v1/health" in dockerfile


def test_compose_has_postgres_app_worker_and_nginx_consistent_with_nginx_conf():
    compose = read("docker-compose.yml")
    services = re.findall(r"^  ([a-z]+):$", compose.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0], re.M)
    assert services == ["postgres", "migrate", "app", "worker", "nginx"]
    # migrations run once, in their own service, before app and worker (which only check the revision)
    assert 'command: ["etl-console", "db", "upgrade"]' in compose
    assert compose.count("condition: service_completed_successfully") == 1 and "depends_on: *after-migrate" in compose
    assert 'command: ["etl-console", "worker"]' in compose
    assert "target: nginx" in compose
    upstream = re.search(r"server (\w+):(\d+);", read("deploy/nginx.conf"))
    assert upstream.group(1) == "app" and f"ETL_BIND: 0.0.0.0:{upstream.group(2)}" in compose
    # auth is required: a public bind without it would refuse to start anyway
    assert "ETL_API_TOKENS: ${ETL_API_TOKENS:?" in compose
    assert "ETL_SECRET_KEY: ${ETL_SECRET_KEY:?" in compose


def test_dockerignore_keeps_what_the_build_copies():
    ignored = {line.strip() for line in read(".dockerignore").splitlines() if line.strip() and not line.startswith("#")}
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", read("Dockerfile"), re.M))
    for path in copied:
        top = path.split("/", 1)[0]
        assert top not in ignored and path not in ignored, f".dockerignore drops {path}, which the Dockerfile copies"


def test_installed_layout_carries_templates_and_static_files():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    data_files = setup["options.data_files"]
    globbed = set()
    for patterns in data_files.values():
        for pattern in patterns.replace("\n", ",").split(","):
            if pattern.strip():
                globbed.update(p.relative_to(REPO).as_posix() for p in REPO.glob(pattern.strip()))
    needed = [p.relative_to(REPO).as_posix() for p in (REPO / "templates").rglob("*.html")]
    needed += [p.relative_to(REPO).as_posix() for p in (REPO / "static").rglob("*") if p.is_file()]
    missing = sorted(set(needed) - globbed)
    assert not missing, f"setup.cfg [options.data_files] does not install: {missing}"
