"""The layers' rules, as the README's Layout section states them: the web layer (api/, console/ and
the app's web modules) calls services; services, the database layer, the runner and the warehouse
import no Flask and no web code; only the edges (a request, the runner, the CLI) end transactions."""
from __future__ import annotations

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = REPOSITORY / "etl_console"
BELOW_THE_WEB = ("services", "db", "runner", "warehouse", "transforms")


def _lines(*parts: str):
    for part in parts:
        for path in sorted((PACKAGE / part).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                yield f"{path.relative_to(PACKAGE)}:{number}", line


def test_no_commit_or_rollback_in_services_or_console():
    assert [where for where, line in _lines("services", "console") if re.search(r"\.(commit|rollback)\(", line)] == []


def test_nothing_below_the_web_layer_imports_flask():
    assert [where for where, line in _lines(*BELOW_THE_WEB) if re.match(r"\s*(import flask|from flask)", line)] == []


def test_nothing_below_the_web_layer_imports_the_web_layer():
    web = re.compile(r"\s*from (\.+|etl_console\.)(api|console|app|auth|web_\w+|serving|cli\w*)\b")
    assert [where for where, line in _lines(*BELOW_THE_WEB) if web.match(line)] == []


def test_status_words_are_spelled_only_by_the_enum_module():
    quoted = re.compile(r"[\'\"](RUNNING|IDLE|PAUSED|FAILED|SUCCESS)[\'\"]")
    found = [where for where, line in _lines("")
             if quoted.search(line) and not where.startswith(("lifecycle.py", "db/migrations/"))]
    found += [str(path.relative_to(REPOSITORY)) for path in (REPOSITORY / "templates").rglob("*.html")
              if quoted.search(path.read_text())]
    assert found == []
