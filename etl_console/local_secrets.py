"""Secrets generated once per host and kept in ETL_DATA_DIR (the session key, the source login's
password), shared by every process that starts there: gunicorn workers starting cold all read the
one value that won, never an empty or a half-written file."""
from __future__ import annotations

import os
import secrets
from pathlib import Path


def local_secret(data_dir: str, name: str) -> str:
    path = Path(data_dir).expanduser() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        candidate = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(candidate, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_text().strip()
