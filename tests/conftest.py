import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch a model hub
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def emulated(tmp_path_factory):
    """The emulated TensorRT's native half, built once per session (tests/emulated_trt.py)."""
    import emulated_trt

    return emulated_trt.build(tmp_path_factory.mktemp("emulated_trt"))


@pytest.fixture(scope="session")
def tiny_lowered(tmp_path_factory):
    """The tiny ViT (helpers.TINY) exported three ways: batch vote in blocks 0-1 (the second drop's N is
    the first's size tensor), fixed_r 20/30 then a vote (static dims), and the per-sample vote.
    name -> the TensorRT-lowered ONNX path (the portable one beside it, without .trt)."""
    from helpers import TINY
    from saint_export.export.pipeline import onnx_models_from_torch
    from saint_export.models.build import build_model

    out = tmp_path_factory.mktemp("tiny_lowered")
    paths = {}
    for name, overrides in TINY_SCHEDULES.items():
        built = build_model(TINY, overrides=overrides)
        paths[name] = onnx_models_from_torch(built, out / f"{name}.onnx", out / f"{name}.trt.onnx").tensorrt
    return paths


TINY_SCHEDULES = {"vote": {"layers": "0-1"}, "fixed": {"layers": "0-2", "fixed_r": [20, 30, -1]},
                  "sample": {"layers": "0-1", "vote": "sample"}}
