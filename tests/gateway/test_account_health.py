"""An account's health on its own: out of rotation with a reason, trials after a doubling backoff."""

from __future__ import annotations

from gateway.upstreams.accounts import AccountHealth, CallRecord


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_account_is_tried_again_after_a_backoff_that_doubles_up_to_its_maximum() -> None:
    clock = Clock()
    health = AccountHealth(30, 100, clock)
    health.disable("credential refused")
    assert (health.state, health.reason, health.retry_after()) == ("disabled", "credential refused", 31)
    health.disable("again, from a job sent before")  # the same trial: no longer wait
    assert health.next_probe_at == 1030
    clock.now = 1030
    assert health.state == "probing"
    health.disable("still refused")
    assert (health.state, health.next_probe_at) == ("disabled", 1090)  # 60 s
    clock.now = 1090
    health.disable("still refused")
    assert health.next_probe_at == 1190  # 120 s, capped at 100
    assert health.enable() is True
    assert (health.state, health.reason, health.disabled_at, health.retry_after()) == (
        "active",
        None,
        None,
        0,
    )
    assert health.enable() is False
    health.disable("refused once more")
    assert health.next_probe_at == 1090 + 30  # a fresh outage starts from the first backoff


def test_the_call_record_gives_error_rate_and_median_latency_over_the_last_calls() -> None:
    calls = CallRecord(size=4)
    assert calls.summary() == {"calls": 0, "error_rate": None, "latency_ms": None}
    for status, seconds in [(500, 9.0), (200, 0.010), (401, 0.020), (None, 0.030), (200, 0.040)]:
        calls.record(status, seconds)
    assert calls.summary() == {"calls": 4, "error_rate": 0.5, "latency_ms": 30}
