"""Cron ticks fire exactly once across runners, and missed ticks fire once, not N times."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import sessionmaker

from etl_console.extensions import etl_of
from etl_console.services import schedules
from etl_console.services.errors import InvalidSchedule


@pytest.fixture
def app_overrides():
    return {"START_RUNNER": False}  # the test plays the runners


def fire_concurrently(app, copies: int) -> list:
    """fire_due from `copies` threads at once, each with its own session, as separate runners would."""
    engine = etl_of(app).database.engine
    barrier, results = threading.Barrier(copies), []

    def fire():
        barrier.wait()
        results.extend(schedules.fire_due(sessionmaker(engine)))

    threads = [threading.Thread(target=fire) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_missed_ticks_fire_once_across_competing_runners(app, client, create_pipeline, sql):
    pipeline = create_pipeline()
    client.put(f"/api/v1/pipelines/{pipeline['id']}/schedule", json={"schedule": "* * * * *"})
    # As if the service had been down for ten minutes: ten ticks were missed.
    sql("UPDATE etl_pipelines SET schedule_last_tick = now() - interval '10 minutes' WHERE id = %s", (pipeline["id"],))
    fired = fire_concurrently(app, copies=4)
    assert [str(p) for p in fired] == [pipeline["id"]]
    assert sql("SELECT trigger, status FROM etl_pipeline_runs") == [("schedule", "RUNNING")]
    assert fire_concurrently(app, copies=2) == []  # this tick is spent
    assert sql("SELECT count(*) FROM etl_pipeline_runs") == [(1,)]


def test_a_new_schedule_waits_for_its_next_tick(app, client, create_pipeline, sql):
    pipeline = create_pipeline()
    client.put(f"/api/v1/pipelines/{pipeline['id']}/schedule", json={"schedule": "* * * * *"})
    assert fire_concurrently(app, copies=1) == []


def test_paused_and_disabled_pipelines_do_not_fire(app, client, create_pipeline, sql):
    paused, disabled = create_pipeline(), create_pipeline(enabled=False)
    client.post(f"/api/v1/pipelines/{paused['id']}/pause")
    for pipeline in (paused, disabled):
        client.put(f"/api/v1/pipelines/{pipeline['id']}/schedule", json={"schedule": "* * * * *"})
    sql("UPDATE etl_pipelines SET schedule_last_tick = now() - interval '1 hour'")
    assert fire_concurrently(app, copies=2) == []


@pytest.mark.parametrize(
    "expression", ["", "* * *", "61 * * * *", "every minute", "* * * * * *", "* * * * * * *", "0 0 30 2 *"]
)
def test_invalid_expressions_are_refused(expression):
    with pytest.raises(InvalidSchedule):
        schedules.validate(expression)


def test_a_broken_schedule_does_not_stop_the_others(app, client, create_pipeline, sql):
    broken, healthy = create_pipeline(), create_pipeline()
    client.put(f"/api/v1/pipelines/{healthy['id']}/schedule", json={"schedule": "* * * * *"})
    # As if saved before validation refused it: 30 February never comes.
    sql("UPDATE etl_pipelines SET schedule = '0 0 30 2 *' WHERE id = %s", (broken["id"],))
    sql("UPDATE etl_pipelines SET schedule_last_tick = now() - interval '1 hour'")
    assert [str(p) for p in fire_concurrently(app, copies=1)] == [healthy["id"]]
    assert client.get(f"/api/v1/pipelines/{broken['id']}/schedule").get_json()["next_run_at"] is None


def test_valid_schedules_are_normalised():
    assert schedules.validate("  */5   * * * * ") == "*/5 * * * *"
    assert schedules.validate("@hourly") == "@hourly"
