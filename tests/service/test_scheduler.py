"""Worker windows are pure functions of the wall clock; the clock fires real triggers."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from daemon.scheduler import ServiceClock, in_windows, next_window_start


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 24, hour, minute)


@pytest.mark.parametrize(
    ("windows", "moment", "inside"),
    [
        ([], at(12), True),
        (["01:00-07:00"], at(0, 59), False),
        (["01:00-07:00"], at(1, 0), True),
        (["01:00-07:00"], at(6, 59), True),
        (["01:00-07:00"], at(7, 0), False),
        (["22:00-06:00"], at(23, 30), True),
        (["22:00-06:00"], at(3), True),
        (["22:00-06:00"], at(12), False),
        (["01:00-03:00", "13:00-14:00"], at(13, 30), True),
        (["01:00-03:00", "13:00-14:00"], at(12, 30), False),
        (["00:00-24:00"], at(17), True),
    ],
)
def test_in_windows(windows: list[str], moment: datetime, inside: bool) -> None:
    assert in_windows(windows, moment) is inside


def test_next_window_start_rolls_to_tomorrow() -> None:
    assert next_window_start(["01:00-07:00"], at(12)) == datetime(2026, 11, 25, 1, 0)
    assert next_window_start(["01:00-07:00", "13:00-14:00"], at(12)) == at(13)
    assert next_window_start([], at(12)) is None


def test_clock_schedules_scan_and_window_triggers() -> None:
    fired = threading.Event()
    clock = ServiceClock("* * * * *", ["01:00-07:00"], on_scan=fired.set, on_window=lambda o: None)
    clock.start()
    try:
        next_scan = clock.next_scan()
        assert next_scan is not None
        assert next_scan.second == 0  # a minute boundary, from the crontab
        ids = {job.id for job in clock._scheduler.get_jobs()}
        assert ids == {"rescan", "window-open-0", "window-close-0"}
    finally:
        clock.shutdown()
