"""The one comparison ``validate`` makes, for a ViT's portable ONNX and for a LLaVA vision encoder:
the exported model, run by a registered runtime, against the PyTorch model with SAINT (the
reference) and without it, through Polygraphy's Comparator. The main output (``logits``,
``image_embeds``) within per-output tolerances, every ``kept_index`` identical (fp16: differences
reported, not failed; shapes must still match)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..models.record import onnx_metadata
from ..runtimes import registry
from .compare import (
    DEFAULT_TOLERANCES,
    FP16_TOLERANCES,
    OutputCheck,
    check_tolerance_names,
    index_note,
)
from .runners import compare, function_runner

Outputs = dict[str, np.ndarray]
REFERENCE, DENSE = "torch SAINT", "torch dense"


@dataclass
class TorchComparison:
    checks: list[OutputCheck]  # the main output, then each kept_index
    failures: list[str]
    outputs: dict[str, Outputs]  # per runner: REFERENCE, DENSE and the runtime's
    runtime: str  # the runtime runner's name
    provider: str  # what ran it, for the report head
    fp16: bool

    @property
    def got(self) -> Outputs:
        return self.outputs[self.runtime]


@dataclass(frozen=True)
class TorchSide:
    """The PyTorch side: ``saint(feed)`` gives the main output and each kept_index, ``dense(feed)`` the main output."""

    saint: Callable[[Outputs], Outputs]
    dense: Callable[[Outputs], Outputs]
    main: str  # "logits" or "image_embeds"
    kept: tuple[str, ...]  # kept_index output names, in graph order


def compare_with_torch(onnx_path: str | Path, torch_side: TorchSide, pixels: torch.Tensor, *,
                       tolerances: dict[str, tuple[float, float]] | None = None, device: str = "cpu",
                       backend: str = "onnxruntime") -> TorchComparison:
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"ONNX model {onnx_path} does not exist")
    runtime = registry.get(backend, device)
    fp16 = onnx_metadata(onnx_path).get("precision") == "fp16"
    check_tolerance_names(tolerances or {}, [torch_side.main, *torch_side.kept])
    tol = {torch_side.main: (FP16_TOLERANCES if fp16 else DEFAULT_TOLERANCES)["logits"], **(tolerances or {})}
    shape = tuple(pixels.shape[1:])
    runners = [function_runner(REFERENCE, torch_side.saint, shape), function_runner(DENSE, torch_side.dense, shape),
               runtime.runner(onnx_path, device, torch_side.kept, runtime.name)]
    index_tol = (float("inf"), 0.0) if fp16 else (0.0, 0.0)
    outputs, found = compare(runners, {"pixels": pixels.numpy()}, {**tol, "": index_tol}, REFERENCE, skip=(DENSE,))
    ours, ref = found[runtime.name], outputs[REFERENCE]
    checks = [ours[torch_side.main]]
    for name in (n for n in torch_side.kept if n in ours):
        check = ours[name]
        checks.append(replace(check, atol=0.0, rtol=0.0,
                              note=check.note or index_note(ref[name], outputs[runtime.name][name], not fp16)))
    failures = [f"{c.name}: {c.note or 'outside tolerance'}" for c in checks if not c.passed]
    return TorchComparison(checks, failures, outputs, runtime.name, runtime.describe(device), fp16)
