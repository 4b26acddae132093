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


def test_summary_says_when_saint_is_not_worth_it_at_a_batch():
    from saint_export.bench import summarize, summary_table

    rows = [row("ort", v, b, t) for b, v, t in ((1, "dense", [10.0] * 5), (1, "saint", [9.9] * 5),
                                                 (8, "dense", [80.0] * 5), (8, "saint", [40.0] * 5))]
    times = {(1, "ort dense"): [10.0] * 5, (1, "ort saint"): [9.9] * 5, (8, "ort dense"): [80.0] * 5, (8, "ort saint"): [40.0] * 5}
    text = summary_table(summarize(rows, times, {1: 2.0, 8: 2.0}), times)
    warnings = [line for line in text.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "batch 1" in warnings[0] and "1.01x" in warnings[0] and "not worth it" in warnings[0]
