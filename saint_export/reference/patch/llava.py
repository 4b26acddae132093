"""SAINT for LLaVA-1.5 on stock transformers (``LlavaForConditionalGeneration``: a CLIP tower, a
projector, a Llama language model): the ViT-only mode of the SAINT paper.

``apply_patch(model, LlavaSaint())`` prunes the vision tower at one layer (index 19 of CLIP-L/14's
24, as published) with the official iterative full-graph drop to ``keep`` tokens (376 with the
class token; :mod:`saint_export.reference.iterative`), or with SAINT's bipartite ViT rule
(``rule="bipartite"``). Stock transformers requires as many image placeholder tokens as image
features, so with pruning on a forward pre-hook (and a ``generate`` wrapper) runs the tower once,
shortens each image's run of placeholders in every sample to the number of features (the same
for every sample: a static count, or the batch's vote), shortens the attention mask and position
ids with it, and hands the language model ``inputs_embeds``. Left-padded batches keep their shape.

Differences from the official code (github ArmenJeddi/saint, ``VLM/``; a fork of transformers
4.31, batch 1):

* batched (any batch size, left padding) on current transformers, by instance patches only;
* the language model sees ``keep - 1`` features per image (LLaVA strips the class token); the
  official LLM-side configuration says 376 for what is 375 tokens;
* ``generate`` returns the *shortened* prompt followed by the new tokens (stock returns the prompt
  as given); the new tokens are what to compare;
* the LLM-only and hybrid modes (pruning inside the Llama layers during prefill) are not
  implemented yet and are refused in one line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import ConfigError
from ..iterative import iterative_drop
from ..schedule import build_schedule
from . import transformers as hfpatch

MODES = ("vit", "llm", "hybrid")
RULES = ("iterative", "bipartite")


@dataclass(frozen=True)
class LlavaSaint:
    """Which SAINT mode runs where. Published ViT-only setting: layer 19, keep 376, divisor 16."""

    mode: str = "vit"
    vit_layer: int = 19
    rule: str = "iterative"  # iterative (official, static count) | bipartite (SAINT's ViT rule, voted count)
    keep: int = 376  # iterative: tokens after the drop, class token included
    divisor: int = 16
    quirk: bool = True  # iterative: upstream's per-round divisor (see iterative.round_sizes)
    threshold: float = 0.75  # bipartite rule
    k: int = 5
    gamma: float = 10.0

    def validate(self, depth: int, tokens: int) -> "LlavaSaint":
        if self.mode not in MODES or self.rule not in RULES:
            raise ConfigError(f"LLaVA SAINT: mode must be one of {list(MODES)} and rule one of {list(RULES)}")
        if self.mode != "vit":
            raise ConfigError(f"LLaVA SAINT mode {self.mode!r} (pruning inside the language model) is not implemented "
                              "yet; use mode 'vit'")
        if not 0 <= self.vit_layer < depth:
            raise ConfigError(f"vit_layer {self.vit_layer} is outside the tower's layers 0..{depth - 1}")
        if self.rule == "iterative" and not (1 < self.keep <= tokens and self.divisor >= 1):
            raise ConfigError(f"keep must be in [2, {tokens}] (class token included) and divisor >= 1")
        return self


def _tower(model: torch.nn.Module) -> torch.nn.Module:
    inner = getattr(model, "model", None)
    tower = getattr(inner, "vision_tower", None)
    if type(model).__name__ != "LlavaForConditionalGeneration" or tower is None:
        raise ConfigError(f"SAINT's LLaVA patch takes a transformers LlavaForConditionalGeneration, not {type(model).__name__}")
    return tower


def apply_patch(model: torch.nn.Module, saint: LlavaSaint | None = None) -> torch.nn.Module:
    """Patch ``model`` (in place) for SAINT's ViT-only mode and return it."""
    saint = saint or LlavaSaint()
    tower = _tower(model)
    if hasattr(model, "_saint_llava"):
        remove_patch(model)
    vision = tower.config
    saint.validate(vision.num_hidden_layers, (vision.image_size // vision.patch_size) ** 2 + 1)
    schedule = build_schedule({"layers": [saint.vit_layer], "threshold": saint.threshold, "k": saint.k,
                               "gamma": saint.gamma}, vision.num_hidden_layers)
    hfpatch.apply_patch(tower, schedule, protected=1)
    if saint.rule == "iterative":
        layer = hfpatch.saint_layers(tower)[saint.vit_layer]
        layer._saint_drop = functools.partial(_iterative, keep=saint.keep, divisor=saint.divisor, quirk=saint.quirk)
    model._saint_llava = saint
    model._saint_llava_hook = model.register_forward_pre_hook(_shorten_prompt, with_kwargs=True)
    model.generate = functools.partial(_generate, model, type(model).generate.__get__(model))
    return model


def _iterative(x: torch.Tensor, metric: torch.Tensor, keep: int, divisor: int, quirk: bool) -> torch.Tensor:
    return iterative_drop(x, metric, keep, divisor, protected=1, quirk=quirk).tokens


def remove_patch(model: torch.nn.Module) -> torch.nn.Module:
    hfpatch.remove_patch(_tower(model))
    model._saint_llava_hook.remove()
    for name in ("_saint_llava", "_saint_llava_hook", "generate"):
        model.__dict__.pop(name, None)
    return model


def pruning_on(model: torch.nn.Module) -> bool:
    return hasattr(model, "_saint_llava") and _tower(model)._saint_state.enabled


def shorten_spans(ids: torch.Tensor, image_token: int, features: int, *others: torch.Tensor | None):
    """Keep the first ``features`` placeholders of every run of ``image_token`` in each row of ``ids``
    [B, T], and the same positions of ``others`` ([B, T, ...] or None). Rows must lose equal counts."""
    is_image = ids == image_token
    positions = torch.arange(ids.shape[1], device=ids.device)
    starts = is_image & ~torch.nn.functional.pad(is_image, (1, 0))[:, :-1]
    run_start = torch.cummax(torch.where(starts, positions, 0), dim=1).values
    keep = ~is_image | (positions - run_start < features)
    counts = keep.sum(1)
    if not bool((counts == counts[0]).all()):
        raise ConfigError("LLaVA SAINT: every sample of a batch needs the same number of images")
    shape = (keep.shape[0], int(counts[0]))
    return tuple(None if t is None else t[keep].view(*shape, *t.shape[2:]) for t in (ids, *others))


def _pruned_inputs(model: torch.nn.Module, kwargs: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
    """Run the pruned tower once; shorten ids, mask, positions and labels; hand the LM ``inputs_embeds``.
    Returns the new kwargs and the shortened ids."""
    inner, token = model.model, model.config.image_token_id
    features = inner.get_image_features(pixel_values=kwargs.pop("pixel_values"), return_dict=True).pooler_output
    features = torch.cat(list(features), dim=0)
    ids = kwargs.pop("input_ids")
    runs = int((ids == token).logical_and(~torch.nn.functional.pad(ids == token, (1, 0))[:, :-1]).sum())
    names = ("attention_mask", "position_ids", "labels")
    ids, *rest = shorten_spans(ids, token, features.shape[0] // max(runs, 1), *(kwargs.get(n) for n in names))
    kwargs.update({n: t for n, t in zip(names, rest) if t is not None})
    embeds = inner.get_input_embeddings()(ids)
    kwargs["inputs_embeds"] = embeds.masked_scatter((ids == token).unsqueeze(-1), features.to(embeds.dtype))
    return kwargs, ids


def _shorten_prompt(model, args, kwargs):
    if args or kwargs.get("pixel_values") is None or kwargs.get("input_ids") is None or not pruning_on(model):
        return None
    return args, _pruned_inputs(model, dict(kwargs))[0]


def _generate(model, stock_generate, *args, **kwargs):
    """``generate`` with the prompt shortened first (the prefill then sees ``inputs_embeds``); returns
    the shortened prompt ids followed by the new tokens, as stock generate does for its prompt."""
    if args or kwargs.get("pixel_values") is None or kwargs.get("input_ids") is None or not pruning_on(model):
        return stock_generate(*args, **kwargs)
    with torch.no_grad():
        kwargs, ids = _pruned_inputs(model, dict(kwargs))
    new = stock_generate(**kwargs)
    return torch.cat([ids, new], dim=1)
