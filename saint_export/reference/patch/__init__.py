"""Patches that make host-library models run SAINT. One module per host library; the shared
helpers (``set_pruning``, ``pruning``, ``remove_patch``) dispatch on the model's host."""

from .timm import apply_patch as timm
from .timm import is_patched, protected_tokens, pruning, remove_patch, set_pruning


def apply(model, schedule, protected=None):
    """Patch ``model`` with its host library's patch: a transformers model (one patched before, or a
    ``transformers.PreTrainedModel``) gets the transformers patch, anything else timm's."""
    host = getattr(model, "_saint_host", None)
    if host is None:
        host = "transformers" if any(type(m).__module__.startswith("transformers.") for m in model.modules()) else "timm"
    if host == "transformers":
        from .transformers import apply_patch as transformers_patch

        return transformers_patch(model, schedule, protected=protected)
    return timm(model, schedule, protected=protected)


def blocks(model):
    """The transformer blocks SAINT patches, in order: timm's ``model.blocks``, or a transformers
    model's encoder layers."""
    if getattr(model, "_saint_host", None) == "transformers":
        from .transformers import saint_layers

        return list(saint_layers(model))
    return list(model.blocks)


def attention(block):
    """The attention module of a block (timm ``attn``; transformers ``self_attn`` / ``attention``)."""
    for name in ("attn", "self_attn", "attention"):
        module = getattr(block, name, None)
        if module is not None:
            return module
    raise ValueError(f"no attention module in {type(block).__name__}")


__all__ = ["apply", "timm", "remove_patch", "is_patched", "set_pruning", "pruning", "protected_tokens", "blocks", "attention"]
