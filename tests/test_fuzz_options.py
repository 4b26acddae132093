"""Every command's numeric options driven with NaN, +-inf, negative, zero and huge values: never an internal
error (exit 8) or a traceback, and a non-finite value is refused (exit 2 or 3) before any work starts.

The work itself (export, search, timing, model answers) is replaced by a stop that reports "fuzz: reached
the work" (exit 4), so accepted values cost only the tiny model's construction."""

import pytest
from click.testing import CliRunner

from saint_export.cli import main
from saint_export.errors import InputError

from helpers import TINY_YAML

VALUES = ["nan", "inf", "-inf", "-1", "0", "1e308"]
NON_FINITE = {"nan", "inf", "-inf"}
REACHED = "fuzz: reached the work"

# (command line before the option, option, how the value is written)
CASES = [
    *[(("tiny2.yaml", "--quiet"), opt, "{}") for opt in ("--seed", "--threshold", "--k", "--gamma", "--fixed-r", "--opset", "--batch")],
    (("tiny2.yaml", "--quiet"), "--tol", "logits={}"),
    (("tiny2.yaml", "--quiet"), "--tol", "logits=1e-3:{}"),
    (("tiny2.yaml", "--quiet"), "--layers", "{}"),
    (("tiny2.yaml", "--quiet", "--engine", "e.plan"), "--engine-batch", "{}"),
    (("inspect", "tiny2.yaml", "--synthetic"), "--seed", "{}"),
    (("validate", "garbage.onnx"), "--batch", "{}"),
    (("validate", "garbage.onnx"), "--tol", "logits={}"),
    *[(("check", "tiny2.yaml"), opt, "{}") for opt in ("--batch", "--limit")],
    (("check", "tiny2.yaml"), "--tol", "logits={}"),
    *[(("bench", "tiny2.yaml"), opt, "{}") for opt in ("--iters", "--warmup", "--min-seconds", "--new-tokens", "--batch", "--k")],
    *[(("calibrate", "tiny2.yaml"), opt, "{}") for opt in ("--batch", "--percentile")],
    (("tune", "tiny2.yaml"), "--target-flops", "{}"),
    (("tune", "tiny2.yaml"), "--target-speedup", "{}"),
    (("tune", "tiny2.yaml", "--target-flops", "2"), "--holdout-every", "{}"),
    *[(("generate", "llava15_small"), opt, "{}") for opt in ("--seed", "--max-new-tokens", "--vit-layer", "--keep", "--llm-threshold",
                                                              "--threshold", "--gamma")],
    *[(("triton", "garbage.onnx", "--repo", "r"), opt, "{}") for opt in ("--max-batch", "--instances")],
]


def reached_the_work(*args, **kwargs):
    raise InputError(REACHED)


@pytest.fixture(scope="module")
def invoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "tiny2.yaml").write_text(TINY_YAML)
    (folder / "garbage.onnx").write_bytes(b"not a model")
    patch = pytest.MonkeyPatch()
    patch.chdir(folder)
    for module, name in [("saint_export.api.pipeline", "onnx_models_from_torch"), ("saint_export.api.verify", "inspect_model"),
                         ("saint_export.api.verify", "run_check"), ("saint_export.bench", "run_bench"),
                         ("saint_export.api.schedules", "calibrate_schedule"), ("saint_export.api.schedules", "tune_schedule"),
                         ("saint_export.api.schedules", "tune_static"), ("saint_export.api.llava", "build_llava")]:
        patch.setattr(f"{module}.{name}", reached_the_work)
    yield lambda args: CliRunner().invoke(main, list(args))
    patch.undo()


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("before,option,form", CASES, ids=[f"{c[0][0]}{c[1]}={c[2]}" for c in CASES])
def test_numeric_option_never_crashes(invoke, before, option, form, value):
    res = invoke([*before, option, form.format(value)])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code != 8 and 0 <= res.exit_code <= 7, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    if value in NON_FINITE:  # refused when the command line is read, before any work
        assert res.exit_code in (2, 3) and REACHED not in res.output, res.output


@pytest.mark.parametrize("args", [("tiny2.yaml", "--seed", "0"), ("bench", "tiny2.yaml", "--min-seconds", "0"),
                                  ("tune", "tiny2.yaml", "--target-flops", "1e308"), ("calibrate", "tiny2.yaml", "--percentile", "0")])
def test_an_accepted_value_reaches_the_work(invoke, args):
    """The stop above is reached, so the values refused in the fuzz test were refused by the checks, not by the stop."""
    res = invoke(args)
    assert res.exit_code == 4 and REACHED in res.output, res.output
