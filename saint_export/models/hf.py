"""Build a SAINT-patched Hugging Face transformers vision model as a :class:`BuiltModel` (what
every stage takes) from a ModelConfig with ``library: transformers``: a hub id or a local save_pretrained folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ConfigError, InputError, MissingDependencyError
from ..reference.schedule import build_schedule, merge_overrides
from .built import BuiltModel
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from .hub import hub_offline


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


def hf_config_for(name: str, alias: str | None = None) -> ModelConfig:
    """A ModelConfig for a transformers model (hub id or local folder): preprocessing from its image
    processor when it can be read without a network, defaults otherwise."""
    local = Path(name).exists()
    alias = alias or Path(name).name or name
    name = str(Path(name).resolve()) if local else name  # records stay valid from any working directory
    size, mean, std, crop_pct, llava = 224, IMAGENET_MEAN, IMAGENET_STD, 1.0, None
    try:
        import transformers

        config = transformers.AutoConfig.from_pretrained(name, local_files_only=local or hub_offline())
        size, mean, std, crop_pct = _preprocessing(name, config, local or hub_offline())
        llava = {} if config.model_type == "llava" else None  # SAINT's LLaVA defaults (LlavaSaint)
    except Exception:  # no transformers, or not cached offline: build_hf says what is missing
        pass
    return ModelConfig(alias=alias, library="transformers", name=name, input_size=size, mean=mean, std=std,
                       crop_pct=crop_pct, hub_weights=not local, description=f"transformers model {name}",
                       source=f"hf:{name}", llava=llava)


def _load(cfg: ModelConfig, weights: str, checkpoint: str | Path | None, seed: int):
    """The transformers model: from_pretrained (hub, folder or --checkpoint folder) or a seeded random
    init from the config's ``model_kwargs`` (a transformers config: ``model_type``, ``architectures``...)."""
    import transformers

    name = str(checkpoint or cfg.name)
    local = Path(name).exists()
    offline = local or hub_offline()
    try:
        if weights == "random" and checkpoint is None:
            kwargs = dict(cfg.model_kwargs)
            config = (transformers.AutoConfig.for_model(kwargs.pop("model_type"), **kwargs) if "model_type" in kwargs
                      else transformers.AutoConfig.from_pretrained(name, local_files_only=offline))
            torch.manual_seed(seed)
            return _auto_class(config)._from_config(config)
        config = transformers.AutoConfig.from_pretrained(name, local_files_only=offline)
        return _auto_class(config).from_pretrained(name, local_files_only=offline)
    except Exception as exc:
        if local:
            raise InputError(f"cannot load a transformers model from {name}: {_first_line(exc)}") from None
        how = "not in the local cache and the hub is unreachable (offline)" if offline else _first_line(exc)
        raise MissingDependencyError(f"{name}: could not load with transformers' from_pretrained: {how}; "
                                     "use a local save_pretrained folder (or --weights random)") from None


def build_hf(cfg: ModelConfig, weights: str, checkpoint: str | Path | None = None,
             overrides: Mapping[str, Any] | None = None, seed: int = 0, output: str | None = None) -> BuiltModel:
    """Load ``cfg.name`` with transformers, wrap it so it returns one tensor (``logits`` /
    ``image_embeds`` / ``pooler_output``), patch it for SAINT and return a BuiltModel.

    Offline (``HF_HUB_OFFLINE`` set, or the hub's host does not resolve) a hub id is looked up in
    the local cache only and fails at once with one line (MissingDependencyError, exit code 5).
    """
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError("Hugging Face models need transformers>=5 (pip install 'saint-export[hf]')") from None
    from ..reference.patch import transformers as hfpatch

    if weights not in ("random", "pretrained"):
        raise ConfigError(f"{cfg.alias}: transformers models take --weights random or pretrained; got {weights!r}")
    model = _load(cfg, weights, checkpoint, seed).eval()
    wrapped = hfpatch.TensorOutput(model, output)
    layers = hfpatch.saint_layers(wrapped)  # ConfigError (one line) for unsupported classes
    schedule = build_schedule(merge_overrides(cfg.schedule, overrides or {}), len(layers))
    hfpatch.apply_patch(wrapped, schedule, protected=None if cfg.protected == "auto" else int(cfg.protected))
    source = str(checkpoint) if checkpoint else ("pretrained" if weights == "pretrained" else f"random(seed={seed})")
    return BuiltModel(cfg, wrapped, schedule, wrapped._saint_protected, source)


__all__ = ["build_hf", "hf_config_for"]
