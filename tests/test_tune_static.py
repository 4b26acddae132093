"""tune's static search: fixed_r per block for a FLOP or a measured speed target, searched on the
tuning images only and reported on held-out ones; deterministic; the YAML has static token dims."""

import json

import pytest
import torch
from click.testing import CliRunner
from helpers import TINY

from saint_export.cli import main
from saint_export.errors import ConfigError
from saint_export.inputs import gather_inputs
from saint_export.models.build import build_model, rescheduled
from saint_export.models.config import load_config_file
from saint_export.onnx_file import graph_io, read_proto
from saint_export.runtimes import registry
from saint_export.schedules.static import StaticEvaluator, search_static, static_tokens
from saint_export.schedules.static_tune import FidelityTarget, SpeedTarget, split, tune_static
from saint_export.verify.analysis import trace_tokens


@pytest.fixture(scope="module")
def setup():
    built = build_model(TINY, overrides={"layers": "all"})
    pixels, _ = gather_inputs(TINY, synthetic=9, use_photos=True)  # 3 photos + 9 generated images with redundancy
    tuning, held = split(pixels.shape[0], 4)
    return built, pixels[tuning], pixels[held]


@pytest.fixture(scope="module")
def tuned(setup):
    built, tuning, held = setup
    return tune_static(built, tuning, held, 1.6)


def test_reaches_the_target_and_the_greedy_walk_only_gets_cheaper(setup, tuned):
    built, tuning, _ = setup
    report, overrides = tuned
    assert report.tuned.flop_ratio >= 1.6 and report.tuned.cost_ratio == report.tuned.flop_ratio
    ratios = [p.cost_ratio for p in report.path]
    assert ratios[0] == 1.0 and all(b > a for a, b in zip(ratios, ratios[1:])) and ratios[-2] < 1.6 <= ratios[-1]
    assert report.tuned.score >= report.path[-1].score  # the exchange sweeps never lose fidelity
    again = StaticEvaluator(built, tuning)(report.tuned.fixed_r)  # the reported point is what the schedule gives
    assert again.fidelity == report.tuned.fidelity and again.tokens == report.tuned.tokens
    assert overrides["fixed_r"] == [r for r in report.tuned.fixed_r if r > 0]
    assert overrides["layers"] == [i for i, r in enumerate(report.tuned.fixed_r) if r > 0]


def test_deterministic_and_the_held_out_images_never_steer_the_search(setup, tuned):
    built, tuning, held = setup
    report, _ = tuned
    other = torch.flip(held, dims=[0]) * 0.5  # other held-out images: same search, another report
    again, _ = tune_static(built, tuning, other, 1.6)
    assert again.tuned.fixed_r == report.tuned.fixed_r
    assert again.holdout["tuned (static)"]["fidelity"] != report.holdout["tuned (static)"]["fidelity"]
    moved, _ = tune_static(built, held, tuning, 1.6)  # tuned on the other split, reported on this one
    check = StaticEvaluator(built, tuning)(moved.tuned.fixed_r)
    assert moved.holdout["tuned (static)"]["fidelity"] == check.fidelity


def test_static_token_counts_are_the_ops_own(setup, tuned):
    built, tuning, _ = setup
    report, overrides = tuned
    with rescheduled(built, overrides) as variant:
        for pixels in (tuning[:1], tuning):  # any batch, any image: the same counts
            blocks, _ = trace_tokens(variant.module, pixels)
            assert [b.tokens_out for b in blocks] == report.tuned.tokens
    assert [b.tokens_out for b in static_tokens(blocks[0].tokens_in, built.protected, report.tuned.fixed_r)] == report.tuned.tokens


def test_unreachable_targets_and_missed_fidelity_are_said(setup):
    built, tuning, held = setup
    with pytest.raises(ConfigError, match="out of reach"):
        search_static(built, tuning, 50.0, blocks=[3])
    with pytest.raises(ConfigError, match="> 1"):
        tune_static(built, tuning, held, float("nan"))
    report, _ = tune_static(built, tuning, held, 1.3, fidelity=FidelityTarget(mean=1.01, worst=1.01))
    assert any("fidelity target is not met" in w and "best trade-off" in w for w in report.warnings)


def test_speed_target_measured_on_onnxruntime(setup):
    """A per-block latency table predicts, then dense and tuned are timed interleaved: both are reported."""
    built, tuning, held = setup
    # a target far below what pruning can give on any load (the table is measured: timings vary, the mechanics do not)
    report, _ = tune_static(built, tuning, held, 1.05, speed=SpeedTarget(registry.get("ort"), batch=2, rounds=3))
    table = report.latency
    assert table.backend == "onnxruntime" and table.batch == 2 and table.tokens == sorted(table.tokens)
    assert all(ms > 0 for ms in table.block_ms) and table.dense_ms > 0
    assert report.predicted_speedup == report.tuned.cost_ratio >= 1.05
    median, q25, q75 = report.measured_speedup
    assert q25 <= median <= q75 and median > 0
    assert "predicted" in report.table() and "measured" in report.table()
    assert (median < 1.05) == any("not worth it" in w for w in report.warnings)


def test_cli_static_yaml_exports_with_static_token_dims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("alias: tiny\nlibrary: timm\nname: vit_tiny_patch16_224\nmodel_kwargs: {depth: 3}\n")
    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)  # noqa: E731
    res = run("tune", "tiny.yaml", "--target-flops", "1.4", "--static")
    assert res.exit_code == 0, res.output
    assert "fixed_r per block" in res.output and "config (dynamic)" in res.output
    cfg = load_config_file(tmp_path / "out/tiny/tiny_tuned.yaml")
    assert all(r > 0 for r in cfg.schedule["fixed_r"])
    assert json.loads((tmp_path / "out/tiny/tune.json").read_text())["tuned"]["flop_ratio"] >= 1.4
    res = run("export", "out/tiny/tiny_tuned.yaml", "--onnx", "t.onnx", "--quiet")
    assert res.exit_code == 0, res.output
    kept = [o for o in graph_io(read_proto(tmp_path / "t.onnx")) if o["name"] == "logits"]
    assert kept and kept[0]["shape"][1:] == [1000]
    dims = [d.dim_value for vi in read_proto(tmp_path / "t.onnx").graph.value_info for d in vi.type.tensor_type.shape.dim[1:2]
            if vi.name.startswith("kept_index")]
    assert dims and all(d > 0 for d in dims)  # every token dim static
    res = run("tune", "tiny.yaml", "--target-speedup", "1.2", "--dynamic")
    assert res.exit_code == 3 and "drop --dynamic" in res.output
    res = run("tune", "tiny.yaml", "--target-speedup", "1.2", "--backend", "trt")
    assert res.exit_code == 5 and "TensorRT" in res.output
