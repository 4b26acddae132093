"""Real TensorRT: a one-plugin network and an engine from the TensorRT-lowered ONNX, compared with the
reference. Needs TensorRT's Python package, a CUDA GPU and the built plugin; skipped otherwise (the
same paths run against the emulated TensorRT in test_engine_emulated.py)."""

import pytest
import torch

pytestmark = pytest.mark.tensorrt

trt = pytest.importorskip("tensorrt", reason="needs TensorRT (pip install 'saint-export[tensorrt]' on a GPU machine)")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)

from saint_export.tensorrt.plugins import load_plugin_library, plugin_library_path  # noqa: E402


@pytest.fixture(scope="module")
def plugin_lib():
    path = plugin_library_path()
    if path is None:
        pytest.skip("libsaint_plugins.so not built: cmake -S plugins -B plugins/build && cmake --build plugins/build")
    load_plugin_library(path)
    return path


def test_one_plugin_network_matches_reference(plugin_lib):
    from helpers import one_plugin_case
    from trt_single_plugin import run_single_plugin

    from saint_export.reference.schedule import LayerRule

    tokens, metric, ref = one_plugin_case()
    out, kept = run_single_plugin(tokens, metric, LayerRule(), 1)
    assert torch.equal(kept, ref.kept_index)
    assert torch.equal(out, ref.tokens)


def test_engine_from_lowered_onnx_matches_pytorch(plugin_lib, tmp_path):
    from saint_export.tensorrt.engine import EngineOptions, engine_from_onnx, engine_runner
    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.inputs import photos, preprocess, synthetic_images
    from saint_export.models.build import build_model
    from saint_export.reference.ops import recording

    from helpers import TINY as cfg
    built = build_model(cfg, overrides={"layers": "0-1"})
    result = onnx_models_from_torch(built, tmp_path / "m.onnx", tmp_path / "m.trt.onnx")
    plan = engine_from_onnx(result.tensorrt, tmp_path / "m.plan", EngineOptions(batch=(1, 4, 8), precision="fp32"))
    pixels = preprocess(photos() + synthetic_images(5), cfg)
    with torch.no_grad(), recording() as drops:
        ref = built.module(pixels)
    with engine_runner(plan) as runner:
        got = torch.as_tensor(runner.infer({"pixels": pixels.numpy()})["logits"])
    assert (got - ref).abs().max().item() < 1e-3
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    assert len(drops) == 2
