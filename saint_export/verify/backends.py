"""The backends ``check`` compares: PyTorch (dense and SAINT) and the registered runtimes. Each is a
callable ``pixels [B, 3, S, S] -> logits [B, K]``; ``backends_for_target`` rebuilds the PyTorch
reference of an alias, a portable ``.onnx`` or a ``.plan`` from its one provenance record."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..export.pipeline import onnx_models_from_torch
from ..models.build import BuiltModel, build_named
from ..models.record import built_from_onnx
from ..reference.patch import pruning
from ..runtimes import registry
from ..runtimes.base import Runtime
from ..tensorrt.sidecar import record_of_engine

Backend = Callable[[torch.Tensor], np.ndarray]


def torch_backends(built: BuiltModel) -> dict[str, Backend]:
    module = built.module

    def run(pruned: bool) -> Backend:
        @torch.no_grad()
        def fn(pixels: torch.Tensor) -> np.ndarray:
            with pruning(module, pruned):
                return module(pixels).numpy()
        return fn

    return {"torch dense": run(False), "torch SAINT": run(True)}


def runtime_backend(runtime: Runtime, artifact: Path, device: str, stack: ExitStack) -> Backend:
    """``runtime``'s runner over ``artifact``, active until ``stack`` closes, as a logits function."""
    runner = runtime.activate(runtime.runner(artifact, device, (), runtime.name), artifact)
    stack.callback(runner.deactivate)
    return lambda pixels: np.asarray(runner.infer({"pixels": pixels.numpy()})["logits"], dtype=np.float32)


def runtimes_for(target: str, backends: tuple[str, ...], device: str) -> list[Runtime]:
    """The runtimes asked for (default: onnxruntime for a model or ``.onnx``, TensorRT for a ``.plan``),
    each checked against the target and the device before any work."""
    suffix = ".plan" if target.endswith(".plan") else ".onnx"
    chosen = [registry.get(name, device) for name in dict.fromkeys(backends or [registry.names(suffix)[0]])]
    for runtime in chosen:
        if runtime.suffix != suffix:
            what = "an engine (.plan)" if suffix == ".plan" else "an ONNX model"
            raise ConfigError(f"--backend {runtime.name} runs {runtime.suffix} files, and {target} is {what}: "
                              f"use one of {', '.join(registry.names(suffix))}")
        runtime.require()
    return chosen


def backends_for_target(target: str, tmp: Path, *, model_name: str | None = None, checkpoint: str | None = None,
                        weights: str | None = None, device: str = "cpu", backends: tuple[str, ...] = (),
                        stack: ExitStack, progress: Callable[[str], None] = lambda s: None) -> tuple[BuiltModel, dict[str, Backend]]:
    """The PyTorch reference and the runtimes' backends for a ``.plan``, a ``.onnx`` or a model name
    (exported to ``tmp`` first); each runtime's runner stays active until ``stack`` closes."""
    path = Path(target)
    if target.endswith((".plan", ".onnx")) and not path.is_file():
        raise InputError(f"{'engine' if target.endswith('.plan') else 'ONNX model'} {target} does not exist")
    runtimes = runtimes_for(target, backends, device)
    if target.endswith(".plan"):
        built = record_of_engine(path).rebuild(model_name, checkpoint, weights, where=target)
    elif target.endswith(".onnx"):
        built = built_from_onnx(path, model_name, checkpoint, weights)
    else:
        built = build_named(target, weights or "random", checkpoint)
        path = tmp / "model.onnx"
        progress("exporting a portable ONNX model")
        onnx_models_from_torch(built, path, None)
    return built, {**torch_backends(built), **{r.name: runtime_backend(r, path, device, stack) for r in runtimes}}
