"""The timing utility: benchmark/core/timing.py."""

from __future__ import annotations

import time

import pytest
import torch

from benchmark.core import timing
from benchmark.core.timing import Timing, time_callable, time_rounds


def test_sleep_is_timed_in_milliseconds_and_calls_are_counted():
    calls = []

    def sleep_10ms():
        calls.append(1)
        time.sleep(0.01)

    timing = time_callable(sleep_10ms, warmup=1, repeats=3)
    assert len(calls) == 4  # 1 warm-up + 3 timed
    assert timing.runs == 3 and timing.warmup == 1 and timing.device == "cpu"
    assert 9.0 <= timing.median_ms <= 100.0  # units check, not a performance assertion
    assert timing.p10_ms <= timing.median_ms <= timing.p90_ms
    assert timing.threads == torch.get_num_threads()


def test_rejects_bad_counts():
    with pytest.raises(ValueError, match="repeats=0"):
        time_callable(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup=-1"):
        time_callable(lambda: None, warmup=-1)


def test_to_dict_and_ms_per_megapixel():
    timing = Timing(median_ms=20.0, p10_ms=18.0, p90_ms=25.0, mean_ms=21.0, runs=5, warmup=2,
                    threads=4, device="cpu")
    assert timing.to_dict()["median_ms"] == 20.0
    assert set(timing.to_dict()) >= {"runs", "warmup", "threads", "device"}
    assert timing.ms_per_megapixel(2000, 1000) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="width=0"):
        timing.ms_per_megapixel(0, 10)


def test_rounds_time_each_call_once_per_round_in_orders_that_vary_and_repeat():
    log = []
    calls = {name: (lambda name=name: log.append(name)) for name in "abcd"}
    timings = time_rounds(calls, warmup=2, repeats=6)
    assert log[:8] == list("aabbccdd")  # the warm-up calls first
    rounds = [log[8 + 8 * k: 16 + 8 * k] for k in range(6)]
    assert len(log) == 8 + 6 * 8
    assert all(one[::2] == one[1::2] for one in rounds)  # each timed call right after an untimed one of its own
    assert all(sorted(one[::2]) == list("abcd") for one in rounds)
    assert len({tuple(one) for one in rounds}) > 1  # shuffled, so no call always follows the same one
    log.clear()
    time_rounds(calls, warmup=2, repeats=6)
    assert [log[8 + 8 * k: 16 + 8 * k] for k in range(6)] == rounds  # seeded: every run the same orders
    assert set(timings) == set("abcd") and all(t.runs == 6 and t.warmup == 2 for t in timings.values())


def test_a_drift_within_the_run_hits_calls_in_rounds_alike(monkeypatch):
    """b costs twice a; the machine slows down as the run goes on (a fake clock). Timed in rounds, the
    ratio holds; one after the other, b is timed later, in a slower state, and reads too slow."""
    clock, calls = [0.0], [0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])

    def work(cost: float):
        def call() -> None:
            calls[0] += 1
            clock[0] += cost * (1 + calls[0] / 100)
        return call

    rounds = time_rounds({"a": work(1.0), "b": work(2.0)}, warmup=1, repeats=9)
    assert abs(rounds["b"].median_ms / rounds["a"].median_ms - 2) < 0.05
    calls[0] = 0
    a, b = time_callable(work(1.0), warmup=1, repeats=9), time_callable(work(2.0), warmup=1, repeats=9)
    assert b.median_ms / a.median_ms > 2.15
