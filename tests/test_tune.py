"""tune: the global bisection, the per-layer refinement, held-out reporting, the YAML it writes."""

import pytest
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.errors import ConfigError
from saint_export.inputs import gather_inputs
from saint_export.models.build import build_model
from saint_export.models.config import load_config_file
from saint_export.schedules.tune import Evaluator, tune

from helpers import TINY


@pytest.fixture(scope="module")
def tuned():
    built = build_model(TINY, overrides={"layers": "0-2"})
    pixels, _ = gather_inputs(TINY, synthetic=6, use_photos=True)
    report, overrides = tune(built, pixels, target=1.6, steps=8, sweeps=1)
    return built, pixels, report, overrides


def test_global_tau_is_the_gentlest_that_reaches_the_target(tuned):
    built, pixels, report, _ = tuned
    assert report.global_tau.flop_ratio >= 1.6
    tau = report.global_tau.thresholds[0]
    gentler = [p for p in report.curve if p.thresholds[0] > tau]
    assert gentler and all(p.flop_ratio < 1.6 for p in gentler)  # every larger tau tried misses the target
    assert report.tune_images == 7 and report.holdout_images == 2  # every 4th image held out


def test_refinement_keeps_the_target_and_never_lowers_fidelity(tuned):
    built, pixels, report, overrides = tuned
    assert report.tuned.flop_ratio >= 1.6 and report.tuned.score >= report.global_tau.score
    assert overrides == {"layers": [0, 1, 2], "threshold": report.tuned.thresholds}
    held = [i for i in range(pixels.shape[0]) if i % 4 == 3]
    again = Evaluator(built, pixels[held])(report.tuned.thresholds)  # the report's held-out numbers are reproducible
    assert again.fidelity == report.holdout["tuned"].fidelity


def test_deterministic_and_unreachable_targets_fail_clearly(tuned):
    built, pixels, report, _ = tuned
    again, _ = tune(built, pixels, target=1.6, steps=8, sweeps=1)
    assert again.tuned.thresholds == report.tuned.thresholds
    with pytest.raises(ConfigError, match="out of reach"):
        tune(built, pixels, target=50.0, steps=2, sweeps=1)


def test_cli_writes_a_config_every_command_accepts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text("alias: tiny\ntimm_name: vit_tiny_patch16_224\nmodel_kwargs: {depth: 3}\n")
    run = lambda *a: CliRunner().invoke(main, list(a), catch_exceptions=False)  # noqa: E731
    res = run("tune", "tiny.yaml", "--layers", "0-1", "--target-flops", "1.3", "--dynamic", "--out", "tu")
    assert res.exit_code == 0, res.output
    cfg = load_config_file(tmp_path / "tu/tiny_tuned.yaml")  # named after the alias, not the --out folder
    assert cfg.schedule["layers"] == [0, 1] and len(cfg.schedule["threshold"]) == 2
    assert (tmp_path / "tu/tune.png").read_bytes()[:4] == b"\x89PNG"
    assert run("inspect", str(tmp_path / "tu/tiny_tuned.yaml"), "--synthetic").exit_code == 0
    res = run("tune", "tiny.yaml", "--target-flops", "2", "--target-speedup", "2")
    assert res.exit_code == 3 and "exactly one" in res.output
