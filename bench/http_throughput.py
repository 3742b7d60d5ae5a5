"""HTTP throughput through nginx: GET /api/v1/pipelines/{id} next to trivial endpoints, same stack, same run.

Starts the deployment test's stack (tests/deploy/stack.py: gunicorn with gunicorn.conf.py and
wsgi.py, `etl-console worker`, Debian's nginx with deploy/nginx.conf, all on 127.0.0.1), creates
one pipeline, then runs wrk against three URLs, interleaved, `--rounds` times:

- `pipeline`: GET /api/v1/pipelines/{id} with a viewer token (auth, one indexed SELECT, JSON);
- `live`:     GET /api/v1/health/live with no token (the app, no database);
- `static`:   GET /static/vendor/swagger-ui/LICENSE (nginx alone, from disk).

Prints each round, the medians, and pipeline/live and pipeline/static ratios; writes them to
bench/results/http.json. Needs nginx and wrk (`apt-get install -y nginx wrk`).

    python bench/http_throughput.py [--database-url URL] [--workers 4] [--threads 8]
                         [--connections 32] [--duration 10] [--rounds 3]

Without --database-url (or ETL_DATABASE_URL) an embedded PostgreSQL is started in a temp dir.
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file is named http.py: drop its own folder from the path, or it would shadow the stdlib's http.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.deploy.client import request  # noqa: E402
from tests.deploy.stack import VIEWER_TOKEN, nginx_binary, start_stack  # noqa: E402


def wrk(url: str, connections: int, duration: int, threads: int, headers: dict | None = None) -> dict:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url]
    for name, value in (headers or {}).items():
        argv[1:1] = ["-H", f"{name}: {value}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def _ms(match) -> float | None:
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return {"us": value / 1000, "ms": value, "s": value * 1000}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("ETL_DATABASE_URL"))
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not nginx_binary() or not shutil.which("wrk"):
        print("needs nginx and wrk: apt-get install -y nginx wrk", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="etl-bench-http-"))
    database_url = args.database_url
    if not database_url:
        from etl_console.db.embedded import start_embedded

        database_url = start_embedded(str(workdir / "pg"))
    stack = start_stack(
        workdir / "stack", database_url, workers=args.workers, max_requests=0,
        extra_env={"ETL_THREADS": str(args.threads)},
    )
    try:
        created = request(
            f"{stack.http}/api/v1/pipelines/",
            "POST",
            {"name": f"bench_{uuid.uuid4().hex[:8]}", "target_table": "analytics.film_dim",
             "source_query": "SELECT id AS film_id, title, rating FROM content.film_work"},
        )
        assert created.status == 201, created.body
        pipeline_id = created.json()["id"]
        targets = {
            "pipeline": (f"{stack.http}/api/v1/pipelines/{pipeline_id}", {"Authorization": f"Bearer {VIEWER_TOKEN}"}),
            "live": (f"{stack.http}/api/v1/health/live", None),
            "static": (f"{stack.http}/static/vendor/swagger-ui/LICENSE", None),
        }
        for name, (url, headers) in targets.items():  # warm up: connections, caches, imports
            wrk(url, args.connections, 2, args.wrk_threads, headers)
        rounds: dict[str, list[dict]] = {name: [] for name in targets}
        for number in range(1, args.rounds + 1):
            order = list(targets) if number % 2 else list(reversed(targets))
            for name in order:
                url, headers = targets[name]
                result = wrk(url, args.connections, args.duration, args.wrk_threads, headers)
                rounds[name].append(result)
                print(f"round {number} {name:<8} {result['rps']:>9.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
                      f"p99 {result['p99_ms']:.2f} ms  non-2xx {result['non_2xx']}", flush=True)
        medians = {name: statistics.median(r["rps"] for r in results) for name, results in rounds.items()}
        print()
        for name, value in medians.items():
            print(f"median {name:<8} {value:>9.0f} req/s")
        print(f"pipeline / live   = {medians['pipeline'] / medians['live']:.2f}")
        print(f"pipeline / static = {medians['pipeline'] / medians['static']:.3f}")
        summary = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count()},
            "settings": vars(args) | {"database_url": "(given)" if args.database_url else "(embedded)"},
            "rounds": rounds,
            "medians_rps": medians,
            "ratio_pipeline_to_live": medians["pipeline"] / medians["live"],
            "ratio_pipeline_to_static": medians["pipeline"] / medians["static"],
        }
        results_dir = REPO / "bench" / "results"
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "http.json").write_text(json.dumps(summary, indent=2))
        failures = sum(r["non_2xx"] for results in rounds.values() for r in results)
        if failures:
            print(f"WARNING: {failures} non-2xx answers during the runs", file=sys.stderr)
        return 0
    finally:
        stack.stop()
        shutil.rmtree(workdir / "stack", ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
