"""Geometry of the run chart: two small bar panels (duration, rows written) over the last runs.

Computed here in Python and drawn as inline SVG by templates/console/_chart.html: no JavaScript,
no chart library. Bars fill fixed slots from the right, so the newest run is always at the right
edge and a regression shows as a step in the bars.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Callable, Sequence

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
    succeeded = sum(1 for run in finished if run.status == "SUCCESS")
    failed = sum(1 for run in finished if run.status == "FAILED")
    text = f"Last {len(runs)} runs, oldest on the left: {succeeded} succeeded, {failed} failed"
    if finished:
        text += f"; median duration {duration(median(run.seconds for run in finished))}"
        text += f", median rows written {number(int(median(run.rows_written for run in finished)))}"
    return text + "."
