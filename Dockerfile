# syntax=docker/dockerfile:1
# etl-console image: gunicorn serving wsgi:app with gunicorn.conf.py, the same files the deployment
# test (tests/deploy) runs. Written for users: this repository's CI has no Docker engine.
#
#   docker build -t etl-console .                  # the app (also runs `etl-console worker`)
#   docker build -t etl-console-nginx --target nginx .   # nginx with deploy/nginx.conf and static/
#   docker compose up -d                           # both, with PostgreSQL: see deploy/README.md

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NGINX_IMAGE=nginx:1.27-bookworm

# --- build a wheel of the project and of every pinned dependency ---------------------------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY deploy/constraints.txt deploy/constraints.txt
COPY etl_console etl_console
COPY templates templates
COPY static static
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c deploy/constraints.txt .

# --- nginx: the sample config and the static files it serves itself -----------------------------
FROM ${NGINX_IMAGE} AS nginx
COPY deploy/nginx.conf /etc/nginx/nginx.conf
COPY static /srv/etl-console/static
RUN nginx -t

# --- the app (default target) ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 etl \
 && useradd --system --uid 10001 --gid etl --home-dir /app --shell /usr/sbin/nologin etl \
 && mkdir -p /app/data \
 && chown etl:etl /app/data
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels etl-console && rm -rf /wheels
COPY gunicorn.conf.py wsgi.py ./
USER etl
# Binding all interfaces needs auth (ETL_API_TOKENS / ETL_CONSOLE_USERS): gunicorn.conf.py refuses
# to start open on a non-loopback address, with a message saying what to set.
ENV ETL_BIND=0.0.0.0:8000 \
    ETL_DATA_DIR=/app/data \
    ETL_LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/tmp/etl-metrics
EXPOSE 8000
# Readiness: 200 only while the database answers and a runner (the worker service) heartbeats.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
