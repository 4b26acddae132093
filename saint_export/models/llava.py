"""LLaVA-1.5 as saint-export builds it: a config with a ``llava:`` section resolves to the whole
model patched for one of SAINT's VLM modes (``bench``, ``generate``), or to its vision encoder
(tower + projector with ViT-only SAINT: the ``--vision`` export).

Weights: ``--weights random`` (seeded, from the config's ``model_kwargs``: offline), a
``save_pretrained`` folder (``--checkpoint``; the encoder reads only the tower's and projector's
tensors from its safetensors, in the hub's layout or transformers 5's) or ``--weights pretrained``
(the hub; exit 5 offline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..errors import ConfigError, InputError, MissingDependencyError
from ..reference.iterative import iterative_drop
from ..reference.llava_saint import LlavaSaint
from ..reference.ops import op_token_drop
from ..reference.schedule import LayerRule
from .config import ModelConfig
from .hub import hub_offline

TOWER_PREFIXES = ("model.vision_tower.", "vision_tower.vision_model.", "vision_tower.")
PROJECTOR_PREFIXES = ("model.multi_modal_projector.", "multi_modal_projector.")
FP32_BYTES = 4


def llava_saint(cfg: ModelConfig, overrides: Mapping[str, Any] | None = None) -> LlavaSaint:
    """The config's ``llava:`` section with ``overrides`` (None values ignored) as a LlavaSaint."""
    fields = {**(cfg.llava or {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    bad = sorted(set(fields) - set(LlavaSaint.__dataclass_fields__))
    if bad:
        raise ConfigError(f"{cfg.alias}: {bad[0]!r} is not a LLaVA SAINT setting")
    defaults = LlavaSaint()
    for name, value in fields.items():
        want = type(getattr(defaults, name))
        if not (isinstance(value, want) and (want is bool or not isinstance(value, bool))
                or want is float and isinstance(value, int) and not isinstance(value, bool)):
            raise ConfigError(f"{cfg.alias}: LLaVA setting {name!r} must be a {want.__name__}; got {value!r}")
    return LlavaSaint(**fields)


def require_llava(cfg: ModelConfig) -> None:
    if not cfg.is_llava:
        raise ConfigError(f"{cfg.alias} is not a LLaVA model (its config has no 'llava:' section); --vision and the "
                          "LLaVA commands take llava15_7b, llava15_13b, llava15_small or your own LLaVA config")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("LLaVA needs transformers>=5 (pip install 'saint-export[hf]')") from None
    return transformers


def llava_config(cfg: ModelConfig, weights: str, checkpoint: str | Path | None):
    """The transformers LlavaConfig: from the checkpoint folder, the hub, or the config's ``model_kwargs``."""
    transformers = _transformers()
    if checkpoint is not None:
        if not (Path(checkpoint) / "config.json").is_file():
            raise InputError(f"checkpoint {checkpoint} is not a save_pretrained folder (no config.json)")
        return transformers.AutoConfig.from_pretrained(str(checkpoint), local_files_only=True)
    if weights == "pretrained":
        if cfg.hub_weights is not True:
            raise MissingDependencyError(f"{cfg.alias}: --weights pretrained unavailable: {cfg.hub_weights}")
        try:
            return transformers.AutoConfig.from_pretrained(cfg.name, local_files_only=hub_offline())
        except Exception:
            raise MissingDependencyError(f"{cfg.name}: the config is not in the local cache and the hub is unreachable; "
                                         "use --checkpoint FOLDER or --weights random") from None
    kwargs = dict(cfg.model_kwargs)
    vision, text = kwargs.pop("vision_config", {}), kwargs.pop("text_config", {})
    kwargs.pop("model_type", None)
    return transformers.LlavaConfig(vision_config=dict(vision), text_config=dict(text), **kwargs)


def parameter_bytes(config) -> int:
    """fp32 bytes of a LLaVA's weights, from its config (tower + projector + language model)."""
    v, t = config.vision_config, config.text_config
    tower = v.num_hidden_layers * (4 * v.hidden_size ** 2 + 2 * v.hidden_size * v.intermediate_size)
    projector = v.hidden_size * t.hidden_size + t.hidden_size ** 2
    lm = t.num_hidden_layers * (4 * t.hidden_size ** 2 + 3 * t.hidden_size * t.intermediate_size) + 2 * t.vocab_size * t.hidden_size
    return FP32_BYTES * (tower + projector + lm)


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 1 << 62


@dataclass
class BuiltLlava:
    config: ModelConfig
    model: torch.nn.Module  # LlavaForConditionalGeneration, patched, eval mode
    saint: LlavaSaint
    weights: str
    processor: Any = None  # the checkpoint's AutoProcessor, when it has one


def build_llava(cfg: ModelConfig, weights: str | None = None, checkpoint: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None, seed: int = 0) -> BuiltLlava:
    """The whole LLaVA model, patched for ``cfg``'s SAINT mode (plus ``overrides``)."""
    require_llava(cfg)
    transformers = _transformers()
    from ..reference.patch.llava import apply_patch

    weights = weights or cfg.default_weights
    config = llava_config(cfg, weights, checkpoint)
    need, have = parameter_bytes(config), _available_bytes()
    if checkpoint is None and weights == "random" and need > 0.8 * have:
        raise MissingDependencyError(f"{cfg.alias}: random fp32 weights need {need / 2**30:.0f} GiB, this machine has "
                                     f"{have / 2**30:.0f} GiB free; use llava15_small on a CPU, or --checkpoint on a larger machine")
    processor = None
    if checkpoint is not None or weights == "pretrained":
        name = str(checkpoint or cfg.name)
        try:
            model = transformers.LlavaForConditionalGeneration.from_pretrained(name, local_files_only=checkpoint is not None)
        except Exception as exc:
            raise InputError(f"cannot load LLaVA from {name}: {str(exc).splitlines()[0][:200]}") from None
        processor = _processor(name)
        source = str(checkpoint or "pretrained")
    else:
        torch.manual_seed(seed)
        model = transformers.LlavaForConditionalGeneration(config)
        source = f"random(seed={seed})"
    model.eval()
    if model.config._attn_implementation not in ("sdpa", "eager"):
        model.set_attn_implementation("sdpa")
    saint = llava_saint(cfg, overrides)
    apply_patch(model, saint)
    return BuiltLlava(cfg, model, saint, source, processor)


def _processor(name: str):
    try:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(name, local_files_only=Path(name).exists())
    except Exception:
        return None


# --------------------------------------------------------------------------- the vision encoder

class VisionEncoder(torch.nn.Module):
    """LLaVA's image path with ViT-only SAINT, as one module for export: ``pixels`` [B, 3, S, S] ->
    (``image_embeds`` [B, M, H_text], the projector's output an LLM consumes, and ``kept_index``
    [B, M] int64, the patch (row-major grid position) each embedding came from, ascending).

    The tower runs up to LLaVA's feature layer (``vision_feature_layer``, -2: the last layer is never
    computed), prunes after the attention residual of ``saint.vit_layer`` (the iterative drop: M =
    keep - 1; the bipartite rule: M voted), drops the class token (strategy ``default``) and
    projects. With pruning off, M = every patch and this equals stock LLaVA's image features."""

    def __init__(self, tower: torch.nn.Module, projector: torch.nn.Module, llava_config, saint: LlavaSaint):
        super().__init__()
        from ..reference.patch.llava import patch_tower

        layer = llava_config.vision_feature_layer
        if not isinstance(layer, int):
            raise ConfigError("the LLaVA vision encoder takes one vision_feature_layer, not a list")
        depth = tower.config.num_hidden_layers
        self.used = layer % (depth + 1)  # hidden_states[layer]: the output of this many layers
        self.tokens = (tower.config.image_size // tower.config.patch_size) ** 2 + 1  # class token included
        saint.validate(depth, self.tokens)
        if not saint.prunes_tower or saint.vit_layer >= self.used:
            raise ConfigError(f"the vision encoder export prunes the tower: it needs mode vit or hybrid (not {saint.mode}) "
                              f"and a vit_layer before the feature layer ({saint.vit_layer} given, {self.used} layers used)")
        self.tower, self.projector, self.saint = tower, projector, saint
        self.strip_class = llava_config.vision_feature_select_strategy == "default"
        patch_tower(tower, saint)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.saint
        pruned = self.tower._saint_state.enabled  # pruning(encoder.tower, False): stock LLaVA features
        x = self.tower.pre_layrnorm(self.tower.embeddings(pixels))
        kept = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
        for i, layer in enumerate(self.tower.encoder.layers[:self.used]):
            if i != s.vit_layer or not pruned:
                x = layer(x, None)
                continue
            x, metric = layer._saint_attention_half(x, {})
            if s.rule == "iterative":
                x, index = iterative_drop(x, metric, s.keep, s.divisor, protected=1, quirk=s.quirk)
            else:
                x, index = op_token_drop(x, metric, LayerRule(threshold=s.threshold, k=s.k, gamma=s.gamma, fixed_r=-1), 1)
                if torch.compiler.is_exporting():
                    torch._check(x.shape[1] >= 2)  # the voted count is a fresh symbol; CLIP's SDPA branches on it
            kept = kept.gather(1, index)
            x = layer._saint_mlp_half(x)
        if self.strip_class:
            x, kept = x[:, 1:], kept[:, 1:]
        return self.projector(x), kept - 1  # patch indices; -1 = the class token (strategy "full")


@dataclass
class BuiltVision:
    config: ModelConfig
    module: VisionEncoder  # patched, eval mode
    saint: LlavaSaint
    weights: str  # "random(seed=N)", "pretrained" or the checkpoint folder


def build_vision(cfg: ModelConfig, weights: str | None = None, checkpoint: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None, seed: int = 0) -> BuiltVision:
    """LLaVA's vision encoder (tower + projector) with ``cfg``'s ViT-only SAINT (plus ``overrides``),
    without building the language model."""
    require_llava(cfg)
    transformers = _transformers()
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    weights = weights or cfg.default_weights
    folder = _pretrained_folder(cfg) if checkpoint is None and weights == "pretrained" else checkpoint
    config = llava_config(cfg, weights, folder)
    torch.manual_seed(seed)
    tower = transformers.AutoModel.from_config(config.vision_config)
    projector = LlavaMultiModalProjector(config)
    if folder is not None:
        _load_parts(Path(folder), tower, projector)
    saint = llava_saint(cfg, overrides)
    encoder = VisionEncoder(tower.eval(), projector.eval(), config, saint).eval()
    source = str(checkpoint) if checkpoint else ("pretrained" if weights == "pretrained" else f"random(seed={seed})")
    return BuiltVision(cfg, encoder, saint, source)


def _pretrained_folder(cfg: ModelConfig) -> str:
    if Path(cfg.name).is_dir():
        return cfg.name
    if cfg.hub_weights is not True:
        raise MissingDependencyError(f"{cfg.alias}: --weights pretrained unavailable: {cfg.hub_weights}")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(cfg.name, allow_patterns=["*.json", "*.safetensors"], local_files_only=hub_offline())
    except Exception:
        raise MissingDependencyError(f"{cfg.name}: not in the local cache and the hub is unreachable; use --checkpoint "
                                     "FOLDER (a save_pretrained LLaVA) or --weights random") from None


def _load_parts(folder: Path, tower: torch.nn.Module, projector: torch.nn.Module) -> None:
    """The tower's and projector's tensors from ``folder``'s safetensors (either key layout), strict."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InputError(f"checkpoint {folder} has no .safetensors files")
    parts: dict[str, dict[str, torch.Tensor]] = {"tower": {}, "projector": {}}
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                for part, prefixes in (("tower", TOWER_PREFIXES), ("projector", PROJECTOR_PREFIXES)):
                    prefix = next((p for p in prefixes if key.startswith(p)), None)
                    if prefix is not None:
                        parts[part].setdefault(key[len(prefix):], f.get_tensor(key))
                        break
    for part, module in (("tower", tower), ("projector", projector)):
        missing, unexpected = module.load_state_dict(parts[part], strict=False)
        unexpected = [k for k in unexpected if not k.endswith("position_ids")]
        if missing or unexpected:
            what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
            raise InputError(f"checkpoint {folder}: the {part} tensors do not match the config ({what}, "
                             f"{len(missing)} missing, {len(unexpected)} unexpected)")
