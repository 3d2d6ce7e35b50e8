"""The timing utility: benchmark/core/timing.py."""

from __future__ import annotations

import time

import pytest
import torch

from benchmark.core.timing import Timing, time_callable


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
