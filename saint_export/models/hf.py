"""Build a SAINT-patched Hugging Face transformers vision model as a :class:`BuiltModel`
(the object the export pipeline and the validator take), from a local folder or a hub id.

Not wired into the model registry / CLI yet; what that needs is listed in ``build_hf_model``'s
docstring.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from .config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from ..errors import InputError, MissingDependencyError
from .build import BuiltModel, _hub_reachable
from ..reference.schedule import build_schedule, merge_overrides

HF_PREFIX = "hf:"  # ModelConfig.timm_name of a transformers model: "hf:<path or hub id>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _auto_class(config) -> Any:
    """The transformers class to instantiate: the checkpoint's own architecture when the patch supports
    it; the vision tower for full CLIP / SigLIP checkpoints."""
    import transformers

    arch = (getattr(config, "architectures", None) or [""])[0]
    if arch in ("CLIPModel",):
        return transformers.CLIPVisionModelWithProjection
    if arch in ("SiglipModel",):
        return transformers.SiglipVisionModel
    if arch and hasattr(transformers, arch):
        return getattr(transformers, arch)
    if "ForImageClassification" in arch:
        return transformers.AutoModelForImageClassification
    return transformers.AutoModel


def _preprocessing(path_or_id: str, config, local_only: bool) -> tuple[int, tuple, tuple, float]:
    """(input_size, mean, std, crop_pct) from the checkpoint's image processor, else config defaults."""
    size = getattr(config, "image_size", None) or getattr(getattr(config, "vision_config", None), "image_size", 224)
    mean, std, crop_pct = IMAGENET_MEAN, IMAGENET_STD, 1.0
    try:
        from transformers import AutoImageProcessor

        proc = AutoImageProcessor.from_pretrained(path_or_id, local_files_only=local_only)
    except Exception:
        return int(size), mean, std, crop_pct
    mean = tuple(float(v) for v in getattr(proc, "image_mean", mean))
    std = tuple(float(v) for v in getattr(proc, "image_std", std))
    crop = getattr(proc, "crop_size", None)
    resize = getattr(proc, "size", None)
    if getattr(proc, "do_center_crop", False) and crop:
        size = int(crop.get("height", size) if isinstance(crop, Mapping) else crop)
        short = resize.get("shortest_edge") if isinstance(resize, Mapping) else None
        crop_pct = size / short if short else 1.0
    elif isinstance(resize, Mapping) and resize.get("height"):
        size = int(resize["height"])
    return int(size), mean, std, min(1.0, crop_pct)


def build_hf_model(
    path_or_id: str | Path,
    schedule: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    alias: str | None = None,
    protected: int | None = None,
    output: str | None = None,
    local_files_only: bool | None = None,
) -> BuiltModel:
    """Load ``path_or_id`` with transformers' ``from_pretrained``, patch it for SAINT, wrap it so it
    returns one tensor (``logits`` / ``image_embeds`` / ``pooler_output``), and return a BuiltModel.

    Offline (``HF_HUB_OFFLINE`` set, or the hub's host does not resolve) a hub id is looked up in
    the local cache only and fails at once with one line (MissingDependencyError, exit code 5).

    Registry / CLI integration needs (not done here):

    * a config field or alias prefix that routes to this function instead of ``models.build_model``
      (e.g. ``timm_name: hf:facebook/dinov2-small``, or a new ``hf_name:`` field in config.FIELDS);
    * ``BuiltModel.depth`` reads ``len(model.blocks)``: for these models use
      ``len(patch.transformers.saint_layers(model))``;
    * ``analysis.trace_tokens`` / ``vit_flops`` walk ``model.blocks`` (timm); use
      ``patch.transformers.trace_tokens`` for token counts (FLOPs for HF models not written);
    * ``--checkpoint`` for HF models = a ``save_pretrained`` folder (pass it as ``path_or_id``);
    * export metadata writes ``timm_name``; here it holds ``hf:<path or id>`` and
      ``export.rebuild.built_from_onnx`` must route such files back to this function.
    """
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("Hugging Face models need transformers>=5 (pip install 'saint-export[hf]')") from None
    from ..reference.patch import transformers as hfpatch

    name = str(path_or_id)
    is_local = Path(name).exists()
    if local_files_only is None:
        local_files_only = is_local or not _hub_reachable()
    try:
        config = transformers.AutoConfig.from_pretrained(name, local_files_only=local_files_only)
        cls = _auto_class(config)
        model = cls.from_pretrained(name, local_files_only=local_files_only)
    except Exception as exc:
        if is_local:
            raise InputError(f"cannot load a transformers model from {name}: {_first_line(exc)}") from None
        how = "not in the local cache and the hub is unreachable (offline)" if local_files_only else _first_line(exc)
        raise MissingDependencyError(f"{name}: could not load with transformers' from_pretrained: {how}; "
                                     "use a local save_pretrained folder") from None
    model.eval()
    wrapped = hfpatch.TensorOutput(model, output)
    layers = hfpatch.saint_layers(wrapped)  # ConfigError (one line) for unsupported classes
    sched = build_schedule(merge_overrides(schedule, overrides or {}), len(layers))
    hfpatch.apply_patch(wrapped, sched, protected=protected)
    size, mean, std, crop_pct = _preprocessing(name, config, local_files_only)
    cfg = ModelConfig(alias=alias or Path(name).name or name, timm_name=HF_PREFIX + name, input_size=size, mean=mean, std=std,
                      crop_pct=crop_pct, protected=wrapped._saint_protected if protected is None else protected,
                      hub_weights=not is_local, schedule=dict(schedule or {}))
    return BuiltModel(cfg, wrapped, sched, wrapped._saint_protected, name)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or not _hub_reachable()


__all__ = ["build_hf_model", "HF_PREFIX", "hub_offline"]
