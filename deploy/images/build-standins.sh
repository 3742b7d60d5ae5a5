#!/usr/bin/env bash
# Build stand-ins for the official base images (python, nginx, postgres) from Debian packages, for a
# Docker engine that cannot pull them (CI here reaches Debian's and PyPI's mirrors, not Docker Hub).
#
#   deploy/images/build-standins.sh            # prints PYTHON_IMAGE=… NGINX_IMAGE=… POSTGRES_IMAGE=…
#   eval "$(deploy/images/build-standins.sh)" && export PYTHON_IMAGE NGINX_IMAGE POSTGRES_IMAGE
#   docker compose up -d --build               # docker-compose.yml passes them as build arguments
#
# Needs root, mmdebstrap and a running Docker engine (`docker import` takes no STOPSIGNAL: set it in
# compose where it matters). Each image is tagged by a hash of what makes
# it (this script, the postgres entrypoint, the Debian suite and sources, the CA bundle), so a second
# call with nothing changed builds nothing. Stand-ins only: users keep the official images.
#
# - python:   python3 + venv + pip; a venv at /opt/venv first on PATH gives `python` and `pip` as in
#             the official image; the host's CA bundle is copied in, so pip inside a build trusts
#             what the host trusts.
# - nginx:    Debian's nginx with an `nginx` user, logs to stdout/stderr, `nginx -g 'daemon off;'`.
# - postgres: Debian's PostgreSQL with an entrypoint that follows the official image's contract:
#             POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA, /docker-entrypoint-initdb.d.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
docker_bin="${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
# The suite apt reaches here: the host's own release (bookworm on this machine's kind).
suite="${STANDIN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"

recipe_hash() {
  { cat "$0" "$here/postgres-entrypoint.sh"; echo "$suite"; cat "$sources" "$ca_bundle" 2>/dev/null; } \
    | sha256sum | cut -c1-12
}
tag_suffix="$(recipe_hash)"

common_opts=(
  --variant=minbase
  --format=tar
  # a merged /usr set up directly, as bookworm's own images have it (else usrmerge pulls in perl)
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='Acquire::Check-Valid-Until "false"'
  --aptopt='APT::Install-Recommends "false"'
  # what the official slim images leave out as well
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log'
)
path_env='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# build NAME TAG [mmdebstrap options...] -- [docker import --change ...]
build() {
  local name="$1" tag="$2"; shift 2
  if "$docker_bin" image inspect "$tag" >/dev/null 2>&1; then
    echo "stand-in $name: $tag (cached)" >&2
    return
  fi
  local opts=() changes=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  while [ "$#" -gt 0 ]; do changes+=(--change "$1"); shift; done
  local work; work="$(mktemp -d)"
  echo "stand-in $name: building $tag" >&2
  local started=$SECONDS
  mmdebstrap --quiet "${common_opts[@]}" "${opts[@]}" "$suite" "$work/rootfs.tar" "$sources" >&2
  "$docker_bin" import "${changes[@]}" "$work/rootfs.tar" "$tag" >/dev/null
  rm -rf "$work"
  echo "stand-in $name: $tag built in $((SECONDS - started)) s" >&2
}

python_tag="etl-console-standin/python:$tag_suffix"
nginx_tag="etl-console-standin/nginx:$tag_suffix"
postgres_tag="etl-console-standin/postgres:$tag_suffix"

wanted=("$@")
[ "${#wanted[@]}" -gt 0 ] || wanted=(python nginx postgres)
for name in "${wanted[@]}"; do
  case "$name" in
    python)
      build python "$python_tag" \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        --customize-hook="copy-in $ca_bundle /etc/ssl/certs" \
        --customize-hook='chroot "$1" python3 -m venv /opt/venv' \
        --customize-hook='find "$1"/usr/lib/python3* "$1"/opt/venv -name __pycache__ -prune -exec rm -rf {} +' \
        -- "ENV PATH=/opt/venv/bin:${path_env#PATH=}" 'ENV LANG=C.UTF-8' \
           "ENV PIP_CERT=$ca_bundle" 'CMD ["python3"]'
      echo "PYTHON_IMAGE=$python_tag" ;;
    nginx)
      build nginx "$nginx_tag" \
        --include=nginx \
        --customize-hook='chroot "$1" useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx' \
        --customize-hook='rm -f "$1"/etc/nginx/sites-enabled/default' \
        --customize-hook='ln -sf /dev/stdout "$1"/var/log/nginx/access.log; ln -sf /dev/stderr "$1"/var/log/nginx/error.log' \
        -- "ENV $path_env" 'EXPOSE 80' 'CMD ["nginx", "-g", "daemon off;"]'
      echo "NGINX_IMAGE=$nginx_tag" ;;
    postgres)
      build postgres "$postgres_tag" \
        --include=postgresql \
        --customize-hook='chroot "$1" sh -c "pg_lsclusters -h | while read v c _; do pg_dropcluster \$v \$c; done"' \
        --customize-hook="copy-in $here/postgres-entrypoint.sh /usr/local/bin" \
        --customize-hook='chmod 755 "$1"/usr/local/bin/postgres-entrypoint.sh; mkdir -p "$1"/docker-entrypoint-initdb.d' \
        --customize-hook='ln -s "$(basename "$1"/usr/lib/postgresql/*)" "$1"/usr/lib/postgresql/current' \
        -- "ENV PATH=/usr/lib/postgresql/current/bin:${path_env#PATH=}" 'ENV PGDATA=/var/lib/postgresql/data' \
           'ENV LANG=C.UTF-8' 'EXPOSE 5432' \
           'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]' 'CMD ["postgres"]'
      echo "POSTGRES_IMAGE=$postgres_tag" ;;
    *) echo "unknown stand-in: $name (python, nginx, postgres)" >&2; exit 2 ;;
  esac
done
