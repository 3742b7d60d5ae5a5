"""Eight processes starting cold on one data directory all get the same secret (no empty, no split)."""
from __future__ import annotations

import multiprocessing

from etl_console.local_secrets import local_secret


def _read(data_dir: str, barrier, results) -> None:
    barrier.wait()
    results.put(local_secret(data_dir, "secret_key"))


def test_cold_starts_share_one_secret(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(25):
        data_dir = str(tmp_path / f"cold{attempt}")
        barrier, results = context.Barrier(8), context.Queue()
        workers = [context.Process(target=_read, args=(data_dir, barrier, results)) for _ in range(8)]
        for worker in workers:
            worker.start()
        secrets = {results.get(timeout=30) for _ in workers}
        for worker in workers:
            worker.join(timeout=30)
        assert len(secrets) == 1 and "" not in secrets, (attempt, secrets)
        assert secrets == {(tmp_path / f"cold{attempt}" / "secret_key").read_text().strip()}
