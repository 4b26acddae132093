"""``saint-export check``: run every backend that is present (PyTorch dense and SAINT,
onnxruntime, TensorRT) on the same images and compare them with Polygraphy's Comparator; optionally
measure top-1 accuracy on an ImageFolder dataset (torchvision; labels = sorted subfolder names)."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError, InputError
from ..inputs import eval_transform, gather_inputs, load_image
from ..models.build import BuiltModel
from .backends import Backend, backends_for_target
from .compare import agreement, describe_agreement
from .runners import compare, function_runner


@dataclass
class DatasetReport:
    root: str
    classes: int
    images: int
    accuracy: dict[str, float] = field(default_factory=dict)  # backend -> top-1
    unreadable: list[str] = field(default_factory=list)  # files skipped (--on-bad-image skip), each with its reason

    def table(self) -> str:
        lines = [f"dataset {self.root}: {self.images} images, {self.classes} classes"]
        if self.unreadable:
            shown = "; ".join(self.unreadable[:3]) + (f"; ... ({len(self.unreadable) - 3} more in the JSON report)"
                                                       if len(self.unreadable) > 3 else "")
            lines.append(f"  {len(self.unreadable)} unreadable image(s) skipped, not counted: {shown}")
        base = self.accuracy.get("torch dense")
        for name, acc in self.accuracy.items():
            delta = f" ({100 * (acc - base):+.2f} pts vs dense)" if base is not None and name != "torch dense" else ""
            lines.append(f"  top-1 {name:<12} {100 * acc:6.2f}%{delta}")
        return "\n".join(lines)


ON_BAD_IMAGE = ("skip", "fail")


def rgb_pil(path: str):
    """ImageFolder's loader: the toolkit's one image reader (16-bit read correctly; failures name the file)."""
    from PIL import Image

    return Image.fromarray(load_image(path))


def image_folder(root: str | Path, built: BuiltModel):
    """torchvision's ImageFolder over ``root/<class>/<image>`` with the model's eval transform."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset {root} is not a directory")
    try:
        return ImageFolder(str(root), transform=eval_transform(built.config, built.module), loader=rgb_pil)
    except (FileNotFoundError, RuntimeError) as exc:
        raise InputError(f"dataset {root}: {str(exc).splitlines()[0]} (expected ROOT/CLASS/IMAGE)") from None


class Skipping(torch.utils.data.Dataset):
    """Items of ``base``; an unreadable image is None (and its reason is kept) unless ``on_bad == "fail"``."""

    def __init__(self, base, on_bad: str):
        self.base, self.on_bad, self.unreadable = base, on_bad, []

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        try:
            return self.base[i]
        except InputError as exc:
            if self.on_bad == "fail":
                raise InputError(f"{exc} (--on-bad-image skip counts and lists such files instead)") from None
            self.unreadable.append(str(exc).removeprefix("cannot read image "))
            return None


def readable_batch(items: list):
    from torch.utils.data import default_collate

    items = [item for item in items if item is not None]
    return default_collate(items) if items else None


def dataset_accuracy(root: str | Path, built: BuiltModel, backends: dict[str, Backend], batch: int = 16,
                     limit: int | None = None, on_bad_image: str = "skip") -> DatasetReport:
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    if on_bad_image not in ON_BAD_IMAGE:
        raise ConfigError(f"on_bad_image must be one of {list(ON_BAD_IMAGE)}; got {on_bad_image!r}")
    if not built.classifier:
        raise InputError(f"{built.config.alias} has no classifier head (num_classes=0): top-1 accuracy does not apply")
    dataset = image_folder(root, built)
    items = Skipping(Subset(dataset, range(min(limit, len(dataset)))) if limit else dataset, on_bad_image)
    correct, seen = {name: 0 for name in backends}, 0
    for got in tqdm(DataLoader(items, batch_size=batch, collate_fn=readable_batch), desc="dataset", unit="batch", leave=False):
        if got is None:
            continue
        pixels, labels = got
        seen += len(labels)
        for name, fn in backends.items():
            correct[name] += int((fn(pixels).argmax(-1) == labels.numpy()).sum())
    if not seen:
        raise InputError(f"dataset {root}: none of its {len(items)} images could be read (first: {items.unreadable[0]})")
    return DatasetReport(str(root), len(dataset.classes), seen, {k: v / seen for k, v in correct.items()}, items.unreadable)


def compare_backends(pixels: torch.Tensor, backends: dict[str, Backend], atol: float, rtol: float,
                     classifier: bool = True) -> dict[str, Any]:
    """Every backend against ``torch SAINT`` through Polygraphy's Comparator (verdict), with max abs/rel
    error and agreement with SAINT and with dense."""
    runners = [function_runner(name, lambda feed, fn=fn: {"logits": fn(torch.from_numpy(feed["pixels"]))}, tuple(pixels.shape[1:]))
               for name, fn in backends.items()]
    results, checks = compare(runners, {"pixels": pixels.numpy()}, {"": (atol, rtol)}, "torch SAINT", skip=("torch dense",))
    outputs = {name: out["logits"] for name, out in results.items()}
    ref, dense = outputs["torch SAINT"], outputs["torch dense"]
    rows = []
    for name, out in outputs.items():
        if name in ("torch SAINT", "torch dense"):
            continue
        check = checks[name]["logits"]
        rows.append({"backend": name, "max_abs": check.max_abs, "max_rel": check.max_rel,
                     "vs_saint": agreement(out, ref, classifier), "vs_dense": agreement(out, dense, classifier),
                     "passed": check.passed})
    return {"rows": rows, "saint_vs_dense": agreement(ref, dense, classifier), "passed": all(r["passed"] for r in rows)}


def comparison_table(result: dict[str, Any]) -> str:
    lines = [f"{'backend':<12} {'max abs':>10} {'max rel':>10}  result  agreement with SAINT | with dense"]
    for r in result["rows"]:
        lines.append(f"{r['backend']:<12} {r['max_abs']:>10.3g} {r['max_rel']:>10.3g}  {'PASS' if r['passed'] else 'FAIL':<6}  "
                     f"{describe_agreement(r['vs_saint'])} | {describe_agreement(r['vs_dense'])}")
    lines.append(f"torch SAINT vs torch dense: {describe_agreement(result['saint_vs_dense'])}")
    return "\n".join(lines)


def run_check(target: str, *, model_name: str | None = None, checkpoint: str | None = None, weights: str | None = None,
              image_dir: str | None = None, batch: int = 8, dataset: str | None = None, limit: int | None = None,
              tolerance: tuple[float, float] = (1e-4, 1e-4), device: str = "cpu", backends: tuple[str, ...] = (),
              on_bad_image: str = "skip", progress: Callable[[str], None] = lambda s: None) -> tuple[dict[str, Any], DatasetReport | None]:
    """Build every backend for ``target``, compare them on the images, optionally measure dataset accuracy."""
    with tempfile.TemporaryDirectory(prefix="saint-check.") as tmp, ExitStack() as stack:
        built, fns = backends_for_target(target, Path(tmp), model_name=model_name, checkpoint=checkpoint, weights=weights,
                                         device=device, backends=backends, stack=stack, progress=progress)
        pixels, names = gather_inputs(built.config, image_dir=image_dir, batch=batch)
        progress(f"running {', '.join(fns)} on {len(names)} images")
        result = compare_backends(pixels, fns, *tolerance, classifier=built.classifier)
        result = {"target": target, "inputs": names, **result}
        report = (dataset_accuracy(dataset, built, fns, batch=batch, limit=limit, on_bad_image=on_bad_image)
                  if dataset else None)
    return result, report


def as_json(result: dict[str, Any], report: DatasetReport | None) -> dict[str, Any]:
    return {"comparison": result, **({"dataset": asdict(report)} if report else {})}
