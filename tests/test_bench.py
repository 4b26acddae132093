"""The benchmark's measurement rules: round-robin with a rotating order, paired ratios."""

import pytest

from saint_export.bench import interleaved, paired_ratio, row


def test_interleaved_rotates_the_order_every_round():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved(fns, warmup=1, iters=3, min_seconds=0)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # nobody always runs first or last
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_paired_ratio_ignores_a_round_that_background_load_slowed():
    dense = [10.0, 10.0, 10.0, 10.0, 10.0]
    saint = [5.0, 5.0, 500.0, 5.0, 5.0]  # one round hit by a burst of load
    ratio, lo, hi = paired_ratio(dense, saint)
    assert ratio == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)


def test_row_reports_median_and_spread():
    r = row("ort", "saint", 8, [4.0, 5.0, 6.0, 100.0, 5.0])
    assert r.p50_ms == 5.0 and r.p10_ms < r.p50_ms < r.p90_ms and r.images_per_s == pytest.approx(8 / 0.005)
