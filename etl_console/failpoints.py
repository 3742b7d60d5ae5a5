"""Named crash points for recovery tests: ETL_FAILPOINT=<name> makes the process die right there.

A real crash (os._exit, no cleanup, no rollback sent) at a chosen step is the only honest way to
test that a crash at any step leaves the target and its watermark consistent."""
from __future__ import annotations

import os


def hit(name: str) -> None:
    if os.environ.get("ETL_FAILPOINT") == name:
        os._exit(86)
