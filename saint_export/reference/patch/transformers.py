"""SAINT for Hugging Face ``transformers`` (>= 5) vision transformers.

Supported (the top-level class decides the protected count P):

=====================================================  =====  ==============================
class                                                  P      where the encoder layers are
=====================================================  =====  ==============================
ViTModel, ViTForImageClassification                    1      ``.layers`` / ``.vit.layers``
DeiTModel, DeiTForImageClassification(WithTeacher)     2      ``.layers`` / ``.deit.layers``
Dinov2Model, Dinov2ForImageClassification              1      ``.encoder.layer``
Dinov2WithRegistersModel (+ ForImageClassification)   1 + R  ``.encoder.layer``
CLIPVisionModel, CLIPVisionModelWithProjection         1      ``.encoder.layers``
SiglipVisionModel                                      0      ``.encoder.layers``
=====================================================  =====  ==============================

CLIP's class token sits at position 0 and its pooled output is that token, so P = 1.
SigLIP has no class token (P = 0); its attention-pooling head takes any token count.

``apply_patch(model, schedule)`` swaps the class of every encoder-layer *instance* of the model
for a subclass (classes are never modified: CLIP's ``CLIPEncoderLayer`` is shared with the text
tower). A layer with a rule runs the stock attention module, adds the residual (after the layer
scale where the model has one), applies ``saint::token_drop`` (one ONNX node) and runs the MLP
half. Layers without a rule run their stock forward. Weights are untouched; ``remove_patch``
restores the classes and removes the hooks.

The metric is the layer's keys averaged over heads, read by a forward hook on the attention's
own ``k_proj``; attention itself (eager, SDPA, flash, flex: whatever ``config._attn_implementation``
selects) stays the library's code. For every supported attention class the key tensor the
attention function receives is exactly ``k_proj(x).view(B, N, H, head_dim).transpose(1, 2)``
(no QK-norm, no rotary embedding). A per-instance hook was chosen over registering a wrapper in
``AttentionInterface``: the interface is selected per config (so per model, and per CLIP tower),
not per layer, and the hook needs no change to the model's config.

Masks: with pruning on, no attention mask reaches any layer. transformers materialises an
all-true mask while ``torch.export`` traces (it skips it in eager mode), and it would no longer fit
after a drop; a mask the *caller* gives (seen by a pre-hook on the base model) is refused.

A new family is one ``@family(...)`` on the layer mixin that prunes it.

Refused with a ConfigError (one line): unsupported classes or layers, schedules naming missing
layers, a caller's attention mask and ``output_attentions`` while pruning.

Pruning off (``set_pruning(model, False)`` or ``with pruning(model, False)``, the shared helpers
of :mod:`saint_export.reference.patch`) calls the stock layer forward with the original arguments: outputs
are bit-identical to the unpatched model.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import torch

from ...errors import ConfigError, MissingDependencyError
from ..ops import op_token_drop
from ..schedule import LayerRule, Schedule, build_schedule
from .timm import (  # shared helpers: they dispatch on model._saint_host
    is_patched,
    pruning,
    set_pruning,
)

HOST = "transformers"

try:
    import transformers  # noqa: F401
    from transformers.utils import output_capturing as _output_capturing
except ImportError as exc:  # pragma: no cover - optional dependency
    raise MissingDependencyError("saint_export.reference.patch.transformers needs transformers>=5 (pip install 'saint-export[hf]')") from exc

__all__ = ["apply_patch", "remove_patch", "set_pruning", "pruning", "is_patched",
           "protected_tokens", "saint_layers", "TensorOutput"]


# --------------------------------------------------------------------------- supported classes

@dataclass(frozen=True)
class Family:
    """One transformers model family SAINT patches: where its classes live, how to reach its encoder
    layers, how many leading tokens it protects, and the layer forward (``mixin``) that prunes."""

    module: str  # transformers.models.<module>
    models: Mapping[str, str | None]  # top-level class -> attribute holding the base model (None: itself)
    layer: str  # encoder layer class
    attention: str  # its attention class (must call k_proj once)
    layers: Callable[[torch.nn.Module], torch.nn.ModuleList]  # base model -> encoder layers
    protected: Callable[[torch.nn.Module], int]
    mixin: type


FAMILIES: list[Family] = []


def family(module: str, models: Mapping[str, str | None], *, layer: str, attention: str,
           layers: Callable[[torch.nn.Module], torch.nn.ModuleList], protected: Callable[[torch.nn.Module], int] = lambda m: 1):
    """Register the decorated layer mixin for one family (a mixin may serve several)."""
    def register(mixin: type) -> type:
        FAMILIES.append(Family(module, dict(models), layer, attention, layers, protected, mixin))
        return mixin
    return register


def _cls(module: str, name: str):
    return getattr(importlib.import_module(f"transformers.models.{module}"), name)


def _supported() -> list[tuple[type, Family, str | None]]:
    """(top-level class, its family, base-model attribute) for every registered class."""
    return [(_cls(f.module, name), f, base) for f in FAMILIES for name, base in f.models.items()]


def _find(model: torch.nn.Module):
    inner = model.model if isinstance(model, TensorOutput) else model
    for cls, fam, base in _supported():
        if type(inner) is cls:
            return inner, fam.layers(getattr(inner, base) if base else inner), fam.protected(inner)
    names = ", ".join(cls.__name__ for cls, _, _ in _supported())
    raise ConfigError(f"SAINT's transformers patch supports {names}; not {type(inner).__name__}")


def saint_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The encoder layers of a supported model (or of a TensorOutput wrapper), in order."""
    return _find(model)[1]


def protected_tokens(model: torch.nn.Module) -> int:
    """Leading tokens SAINT never drops: class (+ distillation, + registers); 0 for SigLIP."""
    return _find(model)[2]


class TensorOutput(torch.nn.Module):
    """``pixels -> one tensor`` around a transformers model (exporters and validators want a
    tensor, transformers returns a ModelOutput): ``logits`` for classifiers, else
    ``image_embeds`` / ``pooler_output`` / the first token of ``last_hidden_state``."""

    def __init__(self, model: torch.nn.Module, output: str | None = None):
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels)
        if self.output is not None:
            return getattr(out, self.output)
        for name in ("logits", "image_embeds", "pooler_output"):
            value = getattr(out, name, None)
            if value is not None:
                return value
        return out.last_hidden_state[:, 0]


# --------------------------------------------------------------------------- patched layers

def _wants_attentions(kwargs: dict) -> bool:
    if kwargs.get("output_attentions"):
        return True
    collected = _output_capturing._active_collector.get()  # set by transformers' capture_outputs
    return bool(collected) and "attentions" in collected


def _key_hook(k_proj: torch.nn.Module, args, output: torch.Tensor) -> None:
    box = getattr(k_proj, "_saint_keys", None)  # a list only while a pruning layer runs its attention
    if box is not None:
        box.append(output)


class _SaintState:
    """Shared by a patched model and all its layers (a plain object: no module cycles, deepcopy-safe)."""

    def __init__(self) -> None:
        self.enabled = True  # pruning on
        self.user_mask = False  # the current forward was given an attention mask


class _SaintLayerMixin:
    """Forward of a patched layer (every encoder layer of a patched model is one).

    Pruning off: the stock forward, untouched arguments. Pruning on: no attention mask reaches
    any layer (transformers materialises an all-true one while torch.export traces; a mask the
    caller gave is refused), and layers with a rule run attention -> residual -> drop -> MLP.
    """

    _saint_rule: Optional[LayerRule]
    _saint_protected: int
    _saint_state: _SaintState

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, **kwargs) -> torch.Tensor:
        state = self._saint_state
        if not state.enabled:
            return super().forward(hidden_states, attention_mask, **kwargs)
        if state.user_mask:
            raise ConfigError("SAINT pruning cannot be combined with an attention mask (turn pruning off or pass no mask)")
        if _wants_attentions(kwargs):
            raise ConfigError("SAINT pruning cannot return attention maps (output_attentions); turn pruning off for them")
        rule = self._saint_rule
        if rule is None:  # a layer outside the schedule: stock forward, without the synthetic mask
            return super().forward(hidden_states, None, **kwargs)
        x, metric = self._saint_attention_half(hidden_states, kwargs)
        drop = getattr(self, "_saint_drop", None)  # another drop rule (the VLM patch's iterative drop), or SAINT's
        if drop is not None:
            x = drop(x, metric)
        else:
            x, _ = op_token_drop(x, metric, rule, self._saint_protected)
        if torch.compiler.is_exporting():
            # transformers' SDPA wrapper branches on ``q_length > 1``; the kept count is a fresh
            # symbol, so tell the tracer. True whenever N - P >= 4: M >= P + (N - P) // 2.
            torch._check(x.shape[1] >= 2)
        return self._saint_mlp_half(x)

    def _saint_attend(self, normed: torch.Tensor, attn: torch.nn.Module, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The stock attention module on ``normed``; returns (its output, keys averaged over heads [B, N, head_dim])."""
        box: list[torch.Tensor] = []
        attn.k_proj._saint_keys = box
        try:
            out, _ = attn(normed, attention_mask=None, **kwargs)
        finally:
            attn.k_proj._saint_keys = None
        if len(box) != 1:
            raise ConfigError(f"{type(attn).__name__}: expected one k_proj call per attention, saw {len(box)}")
        B, N = normed.shape[:2]
        keys = box[0].view(B, N, -1, attn.head_dim).transpose(1, 2)  # what the attention function receives
        return out, keys.mean(1)


@family("vit", {"ViTModel": None, "ViTForImageClassification": "vit"}, layer="ViTLayer", attention="ViTAttention",
        layers=lambda b: b.layers)
@family("deit", {"DeiTModel": None, "DeiTForImageClassification": "deit", "DeiTForImageClassificationWithTeacher": "deit"},
        layer="DeiTLayer", attention="DeiTAttention", layers=lambda b: b.layers, protected=lambda m: 2)
class _ViTLayer(_SaintLayerMixin):
    def _saint_attention_half(self, x, kwargs):
        out, metric = self._saint_attend(self.layernorm_before(x), self.attention, kwargs)
        return self.dropout(out) + x, metric

    def _saint_mlp_half(self, x):
        return self.dropout(self.mlp(self.layernorm_after(x))) + x


@family("dinov2", {"Dinov2Model": None, "Dinov2ForImageClassification": "dinov2"}, layer="Dinov2Layer",
        attention="Dinov2Attention", layers=lambda b: b.encoder.layer)
@family("dinov2_with_registers", {"Dinov2WithRegistersModel": None, "Dinov2WithRegistersForImageClassification": "dinov2_with_registers"},
        layer="Dinov2WithRegistersLayer", attention="Dinov2WithRegistersAttention", layers=lambda b: b.encoder.layer,
        protected=lambda m: 1 + int(m.config.num_register_tokens))
class _Dinov2Layer(_SaintLayerMixin):
    def _saint_attention_half(self, x, kwargs):
        out, metric = self._saint_attend(self.norm1(x), self.attention, kwargs)
        return self.drop_path(self.layer_scale1(out)) + x, metric

    def _saint_mlp_half(self, x):
        return self.drop_path(self.layer_scale2(self.mlp(self.norm2(x)))) + x


@family("clip", {"CLIPVisionModel": None, "CLIPVisionModelWithProjection": "vision_model"}, layer="CLIPEncoderLayer",
        attention="CLIPAttention", layers=lambda b: b.encoder.layers)
@family("siglip", {"SiglipVisionModel": None}, layer="SiglipEncoderLayer", attention="SiglipAttention",
        layers=lambda b: b.encoder.layers, protected=lambda m: 0)
class _CLIPLayer(_SaintLayerMixin):
    def _saint_attention_half(self, x, kwargs):
        out, metric = self._saint_attend(self.layer_norm1(x), self.self_attn, kwargs)
        return x + out, metric

    def _saint_mlp_half(self, x):
        return x + self.mlp(self.layer_norm2(x))


_SAINT_CLASSES: dict[type, type] = {}


def _saint_class(layer_cls: type) -> type:
    if layer_cls not in _SAINT_CLASSES:
        mixin = next(f.mixin for f in FAMILIES if f.layer == layer_cls.__name__)
        _SAINT_CLASSES[layer_cls] = type(f"Saint{layer_cls.__name__}", (mixin, layer_cls), {"_saint_original": layer_cls})
    return _SAINT_CLASSES[layer_cls]


def _attention_of(layer: torch.nn.Module) -> torch.nn.Module | None:
    attn = getattr(layer, "self_attn", None)
    return attn if attn is not None else getattr(layer, "attention", None)


def _check_layer(i: int, layer: torch.nn.Module) -> torch.nn.Module:
    name = type(layer).__name__
    attn_name = next((f.attention for f in FAMILIES if f.layer == name), None)
    attn = _attention_of(layer)
    if attn_name is None or type(attn).__name__ != attn_name or not isinstance(getattr(attn, "k_proj", None), torch.nn.Linear):
        raise ConfigError(f"layer {i} ({name} with {type(attn).__name__}) is not a supported transformers layer; SAINT's patch cannot prune it")
    return attn


def apply_patch(model: torch.nn.Module, schedule: Schedule | None = None, protected: int | None = None) -> torch.nn.Module:
    """Patch ``model`` (a supported transformers model, or a TensorOutput around one) in place and return it.

    Args:
        schedule: which layers prune and how; default = first half of the layers, tau 0.75, K 5, gamma 10.
        protected: leading tokens never dropped; default from the class (see the module docstring).
    """
    if is_patched(model):
        remove_patch(model)
    inner, layers, default_protected = _find(model)
    if schedule is None:
        schedule = build_schedule(None, len(layers))
    if schedule.per_sample:
        raise ConfigError("vote: sample (the batch-invariant mode) is implemented for timm models only; "
                          "for transformers models use vote: batch or a fixed_r schedule")
    for i in schedule.layers:
        if not 0 <= i < len(layers):
            raise ConfigError(f"schedule names layer {i}; the model has layers 0..{len(layers) - 1}")
    attns = {i: _check_layer(i, layer) for i, layer in enumerate(layers)}
    protected = default_protected if protected is None else int(protected)
    if protected < 0:
        raise ConfigError(f"protected must be >= 0; got {protected}")
    state = _SaintState()
    rules = schedule.as_dict()
    for i, layer in enumerate(layers):
        attn = attns[i]
        layer.__class__ = _saint_class(type(layer))  # this instance only; the class is untouched
        layer._saint_rule = rules.get(i)
        layer._saint_protected = protected
        layer._saint_state = state
        attn.k_proj._saint_keys = None
        layer._saint_hook = attn.k_proj.register_forward_hook(_key_hook)
    base = _base_of(model)
    base._saint_state = model._saint_state = state
    model._saint_mask_hook = base.register_forward_pre_hook(_mask_hook, with_kwargs=True)
    model._saint_schedule = schedule
    model._saint_protected = protected
    model._saint_host = HOST
    return model


def _set_pruning(model: torch.nn.Module, enabled: bool) -> None:
    """transformers half of :func:`set_pruning` (called through the shared helper)."""
    model._saint_state.enabled = bool(enabled)


def _base_of(model: torch.nn.Module) -> torch.nn.Module:
    inner = model.model if isinstance(model, TensorOutput) else model
    for cls, _, base in _supported():
        if type(inner) is cls:
            return getattr(inner, base) if base else inner
    raise ConfigError(f"not a supported transformers model: {type(inner).__name__}")


def _mask_hook(base: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    """Before the base model runs: remember whether the caller gave an attention mask."""
    given = kwargs.get("attention_mask")
    names = [p for p in inspect.signature(type(base).forward).parameters if p != "self"]
    if given is None and "attention_mask" in names and len(args) > names.index("attention_mask"):
        given = args[names.index("attention_mask")]
    base._saint_state.user_mask = given is not None


def remove_patch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`apply_patch`: original layer classes, no hooks, no SAINT attributes."""
    for layer in saint_layers(model):
        if isinstance(layer, _SaintLayerMixin):
            attn = _attention_of(layer)
            layer._saint_hook.remove()
            del attn.k_proj._saint_keys
            layer.__class__ = layer._saint_original
            del layer._saint_rule, layer._saint_protected, layer._saint_hook, layer._saint_state
            layer.__dict__.pop("_saint_drop", None)
    if hasattr(model, "_saint_mask_hook"):
        model._saint_mask_hook.remove()
        base = _base_of(model)
        if base is not model:
            del base._saint_state
    for name in ("_saint_schedule", "_saint_protected", "_saint_host", "_saint_state", "_saint_mask_hook"):
        if hasattr(model, name):
            delattr(model, name)
    return model
