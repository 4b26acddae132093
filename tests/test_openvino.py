"""OpenVINO (CPU) as a runtime: the portable tiny ViTs (tiny_lowered: batch vote, fixed_r, per-sample
vote) give onnxruntime's logits and PyTorch SAINT's, and exactly their kept_index, at batch 8 and 1
in one runner; the refusals are one line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import TINY_SCHEDULES
from helpers import TINY, redundant_batch

from saint_export.errors import ConfigError, InputError, MissingDependencyError
from saint_export.models.build import build_model
from saint_export.reference.ops import recording
from saint_export.runtimes import openvino as ov_runtime
from saint_export.runtimes.openvino import openvino_module
from saint_export.runtimes.onnxruntime import ort_runner, ort_session
from saint_export.verify.runners import compare, function_runner
from saint_export.verify.validate import drop_output_names

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="openvino is not installed (pip install 'saint-export[openvino]')")
ORT_TOL = 1e-5  # same ONNX graph, both f32 on CPU: only the kernels' summation order differs
TORCH_TOL = 1e-4  # validate's default logits tolerance against PyTorch


def portable(tiny_lowered, name: str) -> Path:
    return tiny_lowered[name].with_name(f"{name}.onnx")


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    """8 redundant images: 4 generated (flat regions, repeated tiles) + 3 photos, cycled."""
    batch = redundant_batch(n_synthetic=4, with_photos=True)
    return batch[torch.arange(8) % len(batch)]


@torch.no_grad()
def torch_saint(name: str, pixels: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    built = build_model(TINY, overrides=TINY_SCHEDULES[name])  # seeded: the weights tiny_lowered exported
    with recording() as drops:
        logits = built.module(pixels).numpy()
    return logits, [kept.numpy() for _, kept in drops]


@needs_openvino
@pytest.mark.parametrize("name", ["vote", "fixed", "sample"])
def test_logits_and_kept_index_match_onnxruntime_and_pytorch_at_batch_8_and_1(tiny_lowered, pixels, name):
    path = portable(tiny_lowered, name)
    kept_names = drop_output_names(onnx.load(path, load_external_data=False))
    session = ort_session(path, "cpu", tuple(kept_names))
    runner = ov_runtime.openvino_runner(path, extra_outputs=tuple(kept_names))
    with runner:
        for batch in (8, 1, 8):  # one runner, one infer request: the batch and token dims change between calls
            x = pixels[:batch]
            got = runner.infer({"pixels": x.numpy()})
            assert runner.last_inference_time() > 0
            ort = dict(zip(["logits", *kept_names], session.run(["logits", *kept_names], {"pixels": x.numpy()})))
            ref_logits, ref_kept = torch_saint(name, x)
            assert set(got) == {"logits", *kept_names}
            assert got["logits"].dtype == np.float32 and got["logits"].shape == (batch, 1000)
            assert np.abs(got["logits"] - ort["logits"]).max() <= ORT_TOL
            assert np.abs(got["logits"] - ref_logits).max() <= TORCH_TOL
            assert len(ref_kept) == len(kept_names)
            tokens = []
            for kept_name, ref in zip(kept_names, ref_kept):
                kept = got[kept_name]
                assert kept.dtype == np.int64 == ort[kept_name].dtype
                assert np.array_equal(kept, ort[kept_name]) and np.array_equal(kept, ref)
                tokens.append((kept >= 0).sum(1))  # per sample (the per-sample vote pads rows with -1)
            # pruning happened: every pruning block keeps fewer tokens than it was given, for some sample
            # (197 = 196 patches + CLS in; the batch vote keeps the same count for every sample)
            given = [np.full(batch, 197), *tokens[:-1]]
            assert all((kept < before).any() for kept, before in zip(tokens, given)), tokens


@needs_openvino
def test_openvino_is_one_more_runner_in_polygraphys_comparator(tiny_lowered, pixels):
    path = portable(tiny_lowered, "vote")
    kept_names = tuple(drop_output_names(onnx.load(path, load_external_data=False)))

    def saint(feed):
        logits, kept = torch_saint("vote", torch.from_numpy(feed["pixels"]))
        return {"logits": logits, **dict(zip(kept_names, kept))}

    runners = [function_runner("torch SAINT", saint, tuple(pixels.shape[1:])), ort_runner(path, "cpu", kept_names),
               ov_runtime.openvino_runner(path, extra_outputs=kept_names)]
    outputs, checks = compare(runners, {"pixels": pixels.numpy()}, {"logits": (TORCH_TOL, TORCH_TOL), "": (0.0, 0.0)},
                              "torch SAINT")
    assert set(checks["openvino"]) == {"logits", *kept_names}
    assert all(c.passed for c in checks["openvino"].values()), checks["openvino"]
    assert np.abs(outputs["openvino"]["logits"] - outputs["onnxruntime"]["logits"]).max() <= ORT_TOL


@needs_openvino
def test_compiled_in_f32_not_bf16(tiny_lowered):
    runner = ov_runtime.openvino_runner(portable(tiny_lowered, "vote"))
    with runner:
        assert runner.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino_module().Type.f32
        assert list(runner.get_input_metadata(use_numpy_dtypes=False)["pixels"].shape) == [-1, 3, 224, 224]


def test_lowering_inlines_the_function_and_exposes_kept_index(tiny_lowered):
    path = portable(tiny_lowered, "fixed")
    kept_names = tuple(drop_output_names(onnx.load(path, load_external_data=False)))
    proto = ov_runtime.lowered_for_openvino(path, kept_names)
    assert not proto.functions and not any(n.domain == "saint" for n in proto.graph.node)
    assert [o.name for o in proto.graph.output] == ["logits", *kept_names]
    with pytest.raises(ConfigError, match="no value named 'kept_index_block9'"):
        ov_runtime.lowered_for_openvino(path, ("kept_index_block9",))


@needs_openvino
def test_a_model_over_the_protobuf_limit_goes_through_a_temporary_copy_beside_it(tiny_lowered, pixels, monkeypatch):
    path = portable(tiny_lowered, "vote")
    before = sorted(path.parent.iterdir())
    monkeypatch.setattr(ov_runtime, "PROTOBUF_LIMIT", 0)
    with ov_runtime.openvino_runner(path, extra_outputs=("kept_index_block0",)) as runner:
        assert sorted(path.parent.iterdir()) == before  # the copy and its .data are gone once read
        got = runner.infer({"pixels": pixels[:2].numpy()})
    ort = ort_session(path, "cpu", ("kept_index_block0",)).run(["logits", "kept_index_block0"], {"pixels": pixels[:2].numpy()})
    assert np.abs(got["logits"] - ort[0]).max() <= ORT_TOL and np.array_equal(got["kept_index_block0"], ort[1])


@needs_openvino
def test_tensorrt_lowered_model_is_refused_in_one_line(tiny_lowered):
    with pytest.raises(InputError, match="TensorRT-lowered") as info:
        ov_runtime.openvino_runner(tiny_lowered["vote"])
    assert "\n" not in str(info.value) and str(tiny_lowered["vote"]) in str(info.value)


@needs_openvino
def test_openvino_errors_are_one_line_naming_the_file(tiny_lowered, tmp_path, monkeypatch):
    path = portable(tiny_lowered, "vote")
    # the model-local function as is: OpenVINO's ONNX frontend has no conversion for it
    monkeypatch.setattr(ov_runtime, "lowered_for_openvino", lambda p, extra=(): onnx.load(p))
    with pytest.raises(InputError) as info:
        ov_runtime.openvino_runner(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "saint.SaintTokenDrop" in message
    monkeypatch.undo()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot read ONNX model .*garbage.onnx"):
        ov_runtime.openvino_runner(garbage)
    with pytest.raises(InputError, match="does not exist"):
        ov_runtime.openvino_runner(tmp_path / "missing.onnx")


def test_cuda_is_refused_in_one_line(tiny_lowered):
    with pytest.raises(ConfigError, match="OpenVINO runs on CPU here") as info:
        ov_runtime.openvino_runner(portable(tiny_lowered, "vote"), device="cuda")
    assert "\n" not in str(info.value)


def test_missing_openvino_says_how_to_install(tiny_lowered, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    for call in (ov_runtime.openvino_module, lambda: ov_runtime.openvino_runner(portable(tiny_lowered, "vote"))):
        with pytest.raises(MissingDependencyError, match=r"pip install 'saint-export\[openvino\]'") as info:
            call()
        assert "\n" not in str(info.value)


@needs_openvino
def test_validate_check_and_bench_take_backend_openvino(tiny_lowered, tmp_path, monkeypatch):
    """The registry is the only wiring: validate compares OpenVINO's logits and every kept_index with
    PyTorch, check puts it beside onnxruntime, bench times it dense vs SAINT."""
    import json

    from click.testing import CliRunner

    from saint_export.cli import main

    monkeypatch.chdir(tmp_path)
    run = lambda *a: CliRunner().invoke(main, list(a))  # noqa: E731
    path = str(portable(tiny_lowered, "vote"))
    res = run("validate", path, "--backend", "openvino", "--batch", "4", "--json", "v.json")
    assert res.exit_code == 0, res.output
    report = json.loads(Path("v.json").read_text())
    assert report["provider"] == "OpenVINO CPU (f32)" and report["passed"] and report["tokens_torch"] == report["tokens_onnx"]
    assert {o["name"] for o in report["outputs"]} == {"logits", *drop_output_names(onnx.load(path, load_external_data=False))}
    res = run("check", path, "--backend", "onnxruntime", "--backend", "openvino", "--batch", "2", "--json", "c.json")
    assert res.exit_code == 0, res.output
    assert [r["backend"] for r in json.loads(Path("c.json").read_text())["comparison"]["rows"]] == ["onnxruntime", "openvino"]
    Path("t.yaml").write_text("alias: t\nname: vit_tiny_patch16_224\nmodel_kwargs: {depth: 2}\n")
    res = run("bench", "t.yaml", "--backend", "openvino", "--batch", "1", "--iters", "2", "--min-seconds", "0")
    assert res.exit_code == 0, res.output
    rows = json.loads(Path("out/t/bench.json").read_text())["summary"]
    assert [(r["backend"], r["batch"]) for r in rows] == [("openvino", 1)]
    from saint_export.runtimes import registry

    with pytest.raises(ConfigError, match="runs on cpu, not --device cuda"):  # the CLI says "no GPU" first on a machine without one
        registry.get("openvino", "cuda")
