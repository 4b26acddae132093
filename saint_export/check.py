"""``saint-export check``: run every backend that is present (PyTorch dense and SAINT,
onnxruntime, TensorRT) on the same images and compare them, polygraphy-style; optionally
measure top-1 accuracy on an ImageFolder-style dataset (labels = sorted subfolder names)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .errors import InputError
from .images import IMAGE_SUFFIXES, load_image, preprocess
from .models import BuiltModel
from .patch import pruning
from .validate import compare_output

Backend = Callable[[torch.Tensor], np.ndarray]


@dataclass
class DatasetReport:
    root: str
    classes: int
    images: int
    accuracy: dict[str, float] = field(default_factory=dict)  # backend -> top-1

    def table(self) -> str:
        lines = [f"dataset {self.root}: {self.images} images, {self.classes} classes"]
        base = self.accuracy.get("torch dense")
        for name, acc in self.accuracy.items():
            delta = f" ({100 * (acc - base):+.2f} pts vs dense)" if base is not None and name != "torch dense" else ""
            lines.append(f"  top-1 {name:<12} {100 * acc:6.2f}%{delta}")
        return "\n".join(lines)


def image_folder(root: str | Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, label) pairs from ``root/<class>/*.jpg``; classes sorted by name (ImageNet order for wnids)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset {root} is not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise InputError(f"dataset {root} has no class subfolders (expected ROOT/CLASS/IMAGE)")
    items = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).rglob("*"))
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise InputError(f"dataset {root} holds no images")
    return items, classes


def torch_backends(built: BuiltModel) -> dict[str, Backend]:
    model = built.model

    def run(pruned: bool) -> Backend:
        @torch.no_grad()
        def fn(pixels: torch.Tensor) -> np.ndarray:
            with pruning(model, pruned):
                return model(pixels).numpy()
        return fn

    return {"torch dense": run(False), "torch SAINT": run(True)}


def ort_backend(onnx_path: Path, device: str = "cpu") -> Backend:
    from .bench import ort_session

    session = ort_session(onnx_path, device)
    return lambda pixels: session.run(["logits"], {"pixels": pixels.numpy()})[0]


def trt_backend(plan: Path) -> Backend:
    from .engine import TrtRunner

    runner = TrtRunner(plan)
    return lambda pixels: runner.run(pixels).numpy()


def backends_for_target(target: str, tmp: Path, model: str | None, checkpoint: str | None, weights: str | None,
                        device: str, progress: Callable[[str], None]) -> tuple[BuiltModel, dict[str, Backend]]:
    """The PyTorch reference and the backends for a ``.plan`` (TensorRT), a ``.onnx`` (onnxruntime)
    or a model alias / config (exported to ``tmp`` first, then onnxruntime)."""
    from .config import config_from_mapping
    from .export.pipeline import onnx_models_from_torch, schedule_from_metadata
    from .export.rebuild import built_from_onnx
    from .models import build_model
    from .registry import resolve

    if target.endswith(".plan"):
        from .engine import require_tensorrt
        from .triton import read_sidecar

        require_tensorrt()
        if not Path(target).is_file():
            raise InputError(f"engine {target} does not exist")
        meta = read_sidecar(Path(target))
        if model or not meta.get("config"):
            cfg = resolve(model or meta["model"])
        else:
            cfg = config_from_mapping(meta["config"], f"{target} sidecar")
        seed = re.fullmatch(r"random\(seed=(\d+)\)", str(meta.get("weights", "")))
        built = build_model(cfg, weights or ("pretrained" if meta.get("weights") == "pretrained" else "random"), checkpoint,
                            schedule_from_metadata({"schedule": json.dumps(meta.get("schedule", []))}),
                            seed=int(seed.group(1)) if seed else 0)
        return built, {**torch_backends(built), "tensorrt": trt_backend(Path(target))}
    if target.endswith(".onnx"):
        onnx_path = Path(target)
        if not onnx_path.is_file():
            raise InputError(f"ONNX model {target} does not exist")
        built = built_from_onnx(onnx_path, model, checkpoint, weights)
    else:
        built = build_model(resolve(target), weights or "random", checkpoint)
        onnx_path = tmp / "model.onnx"
        progress("exporting a portable ONNX model")
        onnx_models_from_torch(built, onnx_path, None)
    return built, {**torch_backends(built), "onnxruntime": ort_backend(onnx_path, device)}


def dataset_accuracy(root: str | Path, built: BuiltModel, backends: dict[str, Backend], batch: int = 16,
                     limit: int | None = None, progress: Callable[[str], None] = lambda s: None) -> DatasetReport:
    items, classes = image_folder(root)
    items = items[:limit] if limit else items
    correct = {name: 0 for name in backends}
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        pixels = preprocess([load_image(p) for p, _ in chunk], built.config)
        labels = np.array([label for _, label in chunk])
        for name, fn in backends.items():
            correct[name] += int((fn(pixels).argmax(-1) == labels).sum())
        progress(f"{min(start + batch, len(items))}/{len(items)} images")
    return DatasetReport(str(root), len(classes), len(items), {k: v / len(items) for k, v in correct.items()})


def compare_backends(pixels: torch.Tensor, backends: dict[str, Backend], atol: float, rtol: float) -> dict[str, Any]:
    """Every backend against ``torch SAINT``: max abs/rel error, top-1 agreement with SAINT and dense."""
    outputs = {name: fn(pixels) for name, fn in backends.items()}
    ref, dense = outputs["torch SAINT"], outputs["torch dense"]
    rows = []
    for name, out in outputs.items():
        if name in ("torch SAINT", "torch dense"):
            continue
        check = compare_output("logits", ref, out, atol, rtol)
        rows.append({"backend": name, "max_abs": check.max_abs, "max_rel": check.max_rel,
                     "top1_vs_saint": float((out.argmax(-1) == ref.argmax(-1)).mean()),
                     "top1_vs_dense": float((out.argmax(-1) == dense.argmax(-1)).mean()),
                     "passed": check.passed})
    return {"rows": rows, "saint_vs_dense_top1": float((ref.argmax(-1) == dense.argmax(-1)).mean()),
            "passed": all(r["passed"] for r in rows)}


def comparison_table(result: dict[str, Any]) -> str:
    lines = [f"{'backend':<12} {'max abs':>10} {'max rel':>10} {'top-1 = SAINT':>14} {'top-1 = dense':>14}  result"]
    for r in result["rows"]:
        lines.append(f"{r['backend']:<12} {r['max_abs']:>10.3g} {r['max_rel']:>10.3g} {r['top1_vs_saint']:>13.0%} "
                     f"{r['top1_vs_dense']:>13.0%}  {'PASS' if r['passed'] else 'FAIL'}")
    lines.append(f"torch SAINT vs torch dense top-1 agreement: {result['saint_vs_dense_top1']:.0%}")
    return "\n".join(lines)


def as_json(*parts: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        if part is None:
            continue
        out.update(asdict(part) if hasattr(part, "__dataclass_fields__") else part)
    return out
