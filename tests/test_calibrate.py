"""calibrate: observed r per layer -> fixed_r -> a YAML config with static token dims."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.export.trace import onnx_from_torch
from saint_export.inputs import gather_inputs
from saint_export.models.build import build_model
from saint_export.models.config import load_config_file
from saint_export.reference.ops import fixed_kept_count
from saint_export.schedules.calibrate import calibrate
from saint_export.verify.analysis import trace_tokens

from helpers import TINY


@pytest.fixture(scope="module")
def calibrated():
    built = build_model(TINY, overrides={"layers": "0-2", "threshold": 0.8})
    pixels, _ = gather_inputs(TINY, synthetic=6, use_photos=True)  # 9 images: batches of 4, 4, 4 (cycled)
    report, overrides = calibrate(built, pixels, batch=4, percentile=50)
    return built, pixels, report, overrides


def test_fixed_r_is_the_percentile_of_the_observed_votes(calibrated):
    built, pixels, report, overrides = calibrated
    assert report.batches == 3 and report.images == 9
    for layer, rs in report.r_observed.items():
        assert len(rs) == 3 and report.fixed_r[layer] == int(np.floor(np.percentile(rs, 50)))
    assert overrides["fixed_r"] == [report.fixed_r[i] for i in (0, 1, 2)] and overrides["layers"] == [0, 1, 2]
    assert sum(report.fixed_r.values()) > 0  # redundant inputs: something is dropped
    # the model is left with its own (voting) schedule
    assert all(rule.fixed_r == -1 for _, rule in built.schedule.rules)


def test_static_variant_drops_exactly_fixed_r_whatever_the_batch(calibrated):
    built, pixels, report, overrides = calibrated
    static = build_model(TINY, overrides=overrides)
    expected, n = [], 197
    for layer in (0, 1, 2):
        n = fixed_kept_count(n, 1, report.fixed_r[layer])
        expected.append(n)
    for batch in (pixels[:1], pixels[3:8]):
        blocks, _ = trace_tokens(static.module, batch)
        assert [b.tokens_out for b in blocks[:3]] == expected
    assert report.variants["static"].tokens[:3] == expected
    assert report.variants["dense"].flop_ratio == 1.0 and report.variants["static"].flop_ratio > 1.0


def test_cli_writes_a_config_every_command_accepts_with_static_dims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("alias: tiny\ntimm_name: vit_tiny_patch16_224\nmodel_kwargs: {depth: 3}\n"
                                        "schedule: {layers: 0-2, threshold: 0.8}\n")
    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)  # noqa: E731
    res = run("calibrate", "tiny.yaml", "--batch", "4", "--percentile", "25", "--out", "cal")
    assert res.exit_code == 0, res.output
    assert "dynamic" in res.output and "static" in res.output
    cfg = load_config_file(tmp_path / "cal/tiny_calibrated.yaml")  # named after the alias, not the --out folder
    report = json.loads((tmp_path / "cal/calibration.json").read_text())
    assert cfg.alias == "tiny_calibrated" and cfg.schedule["fixed_r"] == [report["fixed_r"][str(i)] for i in range(3)]
    assert (tmp_path / "cal/calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert run("calibrate", "tiny.yaml", "--batch", "4", "--percentile", "25", "--out", "cal").exit_code == 0  # re-run replaces its files
    ir_model = onnx_from_torch(build_model(cfg))
    dims = [node.outputs[0].shape[1] for node in ir_model.graph if node.domain == "saint"]
    assert all(isinstance(d, int) for d in dims) and len(dims) == 3  # static token dims after every pruning node
    res = run("calibrate", "tiny.yaml", "--percentile", "120")
    assert res.exit_code == 3 and "--percentile must be a finite number in [0, 100]" in res.output
