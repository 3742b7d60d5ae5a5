"""Geometry of the run chart: two small bar panels (duration, rows written) over the last runs.

Computed here in Python and drawn as inline SVG by templates/console/_chart.html: no JavaScript,
no chart library. Bars fill fixed slots from the right, so the newest run is always at the right
edge and a regression shows as a step in the bars.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Callable, Sequence

from ..db.models import RunStatus
from ..services.overview import CHART_RUNS, RunView
from .format import duration, number, status_label, utc

WIDTH = 600
PANEL_HEIGHT = 80  # each panel is its own <svg>, stretched to the card's width at this height
MIN_BAR = 2.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    title: str


@dataclass(frozen=True)
class Panel:
    title: str
    max_label: str
    bars: list[Bar]
    width: int = WIDTH
    height: int = PANEL_HEIGHT


@dataclass(frozen=True)
class Chart:
    panels: list[Panel]
    runs: int
    summary: str


def run_chart(runs_newest_first: Sequence[RunView], slots: int = CHART_RUNS) -> Chart | None:
    runs = list(reversed(runs_newest_first[:slots]))
    if not runs:
        return None
    specs: list[tuple[str, Callable[[RunView], float], Callable[[float], str]]] = [
        ("Duration", lambda run: run.seconds, duration),
        ("Rows written", lambda run: float(run.rows_written), lambda value: number(int(value))),
    ]
    panels = [_panel(title, runs, value_of, label, slots) for title, value_of, label in specs]
    return Chart(panels, len(runs), _summary(runs))


def _panel(title, runs, value_of, label, slots) -> Panel:
    baseline = PANEL_HEIGHT
    values = [value_of(run) for run in runs]
    peak = max(values) or 1.0
    step = WIDTH / slots
    width = max(2.0, step * 0.72)
    offset = (slots - len(runs)) * step
    bars = []
    for index, (run, value) in enumerate(zip(runs, values)):
        height = max(MIN_BAR, (PANEL_HEIGHT - 2) * value / peak)
        x = offset + index * step + (step - width) / 2
        tip = (
            f"{utc(run.started_at)}: {status_label(run.status)}, "
            f"{duration(run.seconds)}{' so far' if run.running else ''}, {number(run.rows_written)} rows written"
        )
        bars.append(Bar(round(x, 2), round(baseline - height, 2), round(width, 2), round(height, 2), run.status, tip))
    return Panel(title, f"max {label(max(values))}", bars)


def _summary(runs: list[RunView]) -> str:
    finished = [run for run in runs if not run.running]
    succeeded = sum(1 for run in finished if run.status == RunStatus.SUCCESS)
    failed = sum(1 for run in finished if run.status == RunStatus.FAILED)
    text = f"Last {len(runs)} runs, oldest on the left: {succeeded} succeeded, {failed} failed"
    if finished:
        text += f"; median duration {duration(median(run.seconds for run in finished))}"
        text += f", median rows written {number(int(median(run.rows_written for run in finished)))}"
    return text + "."


# phase timings of one run (the run detail page) ----------------------------------------------------
PHASE_LABELS = {
    "prepare_s": "Prepare: check the columns, create the shadow table",
    "copy_s": "Copy: source query streamed into the shadow (or the incoming batch)",
    "index_s": "Build the target's indexes on the shadow",
    "gates_s": "Quality gates",
    "publish_wait_s": "Wait for the target's lock to publish",
    "upsert_s": "Upsert changed rows into the target",
}


@dataclass(frozen=True)
class Phase:
    name: str
    label: str
    seconds: float
    percent: float  # of the load's total, for the bar's width


@dataclass(frozen=True)
class PhaseTimings:
    phases: list[Phase]
    total: float | None  # the load itself, as the loader measured it
    outside: float | None  # the rest of the run: waiting for a runner, claiming, committing, recording


def phase_timings(timings: dict | None, run_seconds: float | None) -> PhaseTimings | None:
    """Bars for each recorded phase against the load's total, in the order the loaders run them
    (JSONB keeps no key order), any phase this module does not know last."""
    if not timings:
        return None
    known = list(PHASE_LABELS)
    ordered = sorted(timings, key=lambda name: (known.index(name) if name in known else len(known), name))
    numbers = {name: float(timings[name]) for name in ordered if isinstance(timings[name], (int, float))}
    total = numbers.pop("total_s", None)
    scale = total or sum(numbers.values()) or 1.0
    phases = [
        Phase(name, PHASE_LABELS.get(name, name.removesuffix("_s").replace("_", " ").capitalize()), seconds,
              round(min(100.0, 100.0 * seconds / scale), 1))
        for name, seconds in numbers.items()
    ]
    outside = None
    if total is not None and run_seconds is not None:
        outside = max(0.0, run_seconds - total)
    return PhaseTimings(phases, total, outside)
