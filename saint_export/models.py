"""Build a SAINT-patched timm model from a ModelConfig: architecture, weights, schedule."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from . import patch
from .config import ModelConfig
from .errors import ConfigError, InputError, MissingDependencyError
from .schedule import Schedule, build_schedule, merge_overrides

WEIGHTS = ("random", "pretrained")


@dataclass
class BuiltModel:
    config: ModelConfig
    model: torch.nn.Module  # patched, eval mode
    schedule: Schedule
    protected: int
    weights: str  # "random(seed=0)", "pretrained", or the checkpoint path

    @property
    def depth(self) -> int:
        return len(self.model.blocks)


def create_architecture(cfg: ModelConfig, pretrained: bool = False) -> torch.nn.Module:
    import timm

    kwargs = dict(cfg.model_kwargs)
    try:
        return timm.create_model(cfg.timm_name, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:
        if pretrained:
            raise  # handled by the caller
        raise ConfigError(f"{cfg.alias}: timm cannot build {cfg.timm_name} with {kwargs}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cfg.alias}: timm cannot build {cfg.timm_name} with {kwargs}: {exc}") from None


def _pretrained(cfg: ModelConfig) -> torch.nn.Module:
    if cfg.hub_weights is not True:
        note = cfg.hub_weights if isinstance(cfg.hub_weights, str) else "this config has no hub weights"
        raise MissingDependencyError(f"{cfg.alias}: --weights pretrained unavailable: {note}")
    offline = not _hub_reachable()
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
            f"{cfg.alias}: could not fetch pretrained weights for {cfg.timm_name} from timm's hub ({first.split('. ')[0][:160]}); "
            "this needs a network: use --checkpoint PATH or --weights random"
        ) from None
    finally:
        if offline and hub_constants is not None:
            hub_constants.HF_HUB_OFFLINE = saved


def _hub_reachable(host: str = "huggingface.co") -> bool:
    """A DNS lookup, so an offline machine fails in milliseconds instead of after minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "")
    host = endpoint.split("//")[-1].split("/")[0].split(":")[0] or host
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A .safetensors file or a torch .pth/.pt/.bin state dict (``model``/``state_dict`` wrappers unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    for key in ("model", "state_dict", "model_ema", "module"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"checkpoint {path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_checkpoint(model: torch.nn.Module, path: Path) -> None:
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = read_state_dict(path)
    try:
        state = checkpoint_filter_fn(state, model)
    except Exception as exc:
        raise InputError(f"checkpoint {path} does not fit {type(model).__name__}: {exc}") from None
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # size mismatches
        detail = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line][:1]
        raise InputError(f"checkpoint {path} does not match the architecture: {detail[0] if detail else exc}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise InputError(
            f"checkpoint {path} does not match the architecture: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )


def build_model(
    cfg: ModelConfig,
    weights: str = "random",
    checkpoint: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> BuiltModel:
    """Create the timm model, load weights, patch it with the config's schedule (plus overrides)."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {WEIGHTS}; got {weights!r}")
    if checkpoint is not None:
        model = create_architecture(cfg)
        load_checkpoint(model, Path(checkpoint))
        source = str(checkpoint)
    elif weights == "pretrained":
        model = _pretrained(cfg)
        source = "pretrained"
    else:
        torch.manual_seed(seed)
        model = create_architecture(cfg)
        source = f"random(seed={seed})"
    model.eval()
    schedule = build_schedule(merge_overrides(cfg.schedule, overrides or {}), len(model.blocks))
    protected = None if cfg.protected == "auto" else int(cfg.protected)
    patch.timm(model, schedule, protected=protected)
    return BuiltModel(cfg, model, schedule, model._saint_protected, source)
