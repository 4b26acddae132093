"""SAINT for LLaVA-1.5 on stock transformers (``LlavaForConditionalGeneration``: a CLIP tower, a
projector, a Llama language model) in the SAINT paper's three VLM modes.

``apply_patch(model, LlavaSaint(mode=...))``:

* ``vit``: the vision tower is pruned at one layer (index 19 of CLIP-L/14's 24, as published) with
  the official iterative full-graph drop to ``keep`` tokens (376 with the class token;
  :mod:`saint_export.reference.iterative`), or with SAINT's bipartite ViT rule
  (``rule="bipartite"``). Stock transformers requires as many image placeholder tokens as image
  features, so a forward pre-hook (and a ``generate`` wrapper) runs the tower once, shortens each
  image's run of placeholders in every sample to the number of features (the same for every
  sample: a static count, or the batch's vote), shortens the attention mask, position ids and
  labels with it, and hands the language model ``inputs_embeds``. Left-padded batches keep their
  shape.
* ``llm``: the language model drops image tokens during prefill after layers ``llm_start..llm_end``
  (7..16, tau 0.83, as published), each sample by its own vote
  (:mod:`saint_export.reference.patch.llama_prefill`); the image span of each sample is found
  from its image-token positions.
* ``hybrid``: both; the language model's image span is what the tower kept (375 tokens).

``pruning(model, False)`` (the shared helper) turns every part off: stock transformers, bit for bit.

Differences from the official code (github ArmenJeddi/saint, ``VLM/``; a fork of transformers
4.31, batch 1):

* batched (any batch size, left padding) on current transformers, by instance patches only;
* the language model sees ``keep - 1`` features per image (LLaVA strips the class token); the
  official LLM-side configuration says 376 for what is 375 tokens;
* ``generate`` returns the *shortened* prompt followed by the new tokens (stock returns the prompt
  as given); the new tokens are what to compare;
* the LLM side: see :mod:`saint_export.reference.patch.llama_prefill` (per-sample spans and votes,
  left padding); with LLM pruning the logits cover the pruned sequence (its last position is
  each sample's last token) and ``labels`` are refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import ConfigError
from ..iterative import iterative_drop
from ..schedule import build_schedule
from . import llama_prefill
from . import transformers as hfpatch

HOST = "llava"

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
    llm_start: int = 7  # language-model layers after which prefill prunes image tokens (inclusive)
    llm_end: int = 16
    llm_threshold: float = 0.83
    llm_k: int = 5
    llm_gamma: float = 10.0
    llm_position_quirk: bool = False  # decode positions as upstream (one past stock's); see llama_prefill

    @property
    def prunes_tower(self) -> bool:
        return self.mode in ("vit", "hybrid")

    @property
    def prunes_llm(self) -> bool:
        return self.mode in ("llm", "hybrid")

    @property
    def prefill_rule(self) -> llama_prefill.PrefillRule:
        return llama_prefill.PrefillRule(self.llm_start, self.llm_end, self.llm_threshold, self.llm_k, self.llm_gamma,
                                         self.llm_position_quirk)

    def validate(self, depth: int, tokens: int) -> "LlavaSaint":
        if self.mode not in MODES or self.rule not in RULES:
            raise ConfigError(f"LLaVA SAINT: mode must be one of {list(MODES)} and rule one of {list(RULES)}")
        if not self.prunes_tower:
            return self
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
    if saint.prunes_llm:
        llama_prefill.apply_patch(_language_model(model), saint.prefill_rule)
    if saint.prunes_tower:
        schedule = build_schedule({"layers": [saint.vit_layer], "threshold": saint.threshold, "k": saint.k,
                                   "gamma": saint.gamma}, vision.num_hidden_layers)
        hfpatch.apply_patch(tower, schedule, protected=1)
        if saint.rule == "iterative":
            layer = hfpatch.saint_layers(tower)[saint.vit_layer]
            layer._saint_drop = functools.partial(_iterative, keep=saint.keep, divisor=saint.divisor, quirk=saint.quirk)
    model._saint_llava = model._saint_schedule = saint
    model._saint_host = HOST
    model._saint_llava_hook = model.register_forward_pre_hook(_before_forward, with_kwargs=True)
    model.generate = functools.partial(_generate, model, type(model).generate.__get__(model))
    return model


def _language_model(model: torch.nn.Module) -> torch.nn.Module:
    return model.model.language_model


def _iterative(x: torch.Tensor, metric: torch.Tensor, keep: int, divisor: int, quirk: bool) -> torch.Tensor:
    return iterative_drop(x, metric, keep, divisor, protected=1, quirk=quirk).tokens


def remove_patch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`apply_patch`: stock tower, language model and ``generate``."""
    if hfpatch.is_patched(_tower(model)):
        hfpatch.remove_patch(_tower(model))
    llama_prefill.remove_patch(_language_model(model))
    model._saint_llava_hook.remove()
    for name in ("_saint_llava", "_saint_schedule", "_saint_host", "_saint_llava_hook", "generate"):
        model.__dict__.pop(name, None)
    return model


def _set_pruning(model: torch.nn.Module, enabled: bool) -> None:
    """LLaVA half of the shared ``set_pruning``: the tower and the language model together."""
    if model._saint_llava.prunes_tower:
        hfpatch._set_pruning(_tower(model), enabled)
    if model._saint_llava.prunes_llm:
        llama_prefill.set_enabled(_language_model(model), enabled)


def pruning_on(model: torch.nn.Module) -> bool:
    """The tower prunes (its own switch, or the model's)."""
    return hasattr(model, "_saint_llava") and model._saint_llava.prunes_tower and _tower(model)._saint_state.enabled


def llm_pruning_on(model: torch.nn.Module) -> bool:
    return hasattr(model, "_saint_llava") and model._saint_llava.prunes_llm and _language_model(model)._saint_prefill.enabled


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


def _announce_images(model, ids: torch.Tensor | None, kwargs: dict[str, Any]) -> None:
    """LLM pruning: tell the language model where the image tokens of this sequence are."""
    if ids is None or not llm_pruning_on(model):
        return
    if kwargs.get("labels") is not None:
        raise ConfigError("LLaVA SAINT: LLM pruning shortens the sequence inside the language model, so labels "
                          "(a loss) are refused; turn pruning off for training or scoring")
    llama_prefill.expect_images(_language_model(model), ids == model.config.image_token_id)


def _before_forward(model, args, kwargs):
    if args:
        return None
    ids = kwargs.get("input_ids")
    changed = None
    if kwargs.get("pixel_values") is not None and ids is not None and pruning_on(model):
        changed, ids = _pruned_inputs(model, dict(kwargs))
    _announce_images(model, ids, kwargs)
    return None if changed is None else (args, changed)


def _generate(model, stock_generate, *args, **kwargs):
    """``generate`` with the prompt shortened first when the tower prunes (the prefill then sees
    ``inputs_embeds``); returns the shortened prompt ids followed by the new tokens, as stock
    generate does for its prompt."""
    if args or kwargs.get("pixel_values") is None or kwargs.get("input_ids") is None or not pruning_on(model):
        return stock_generate(*args, **kwargs)
    with torch.no_grad():
        kwargs, ids = _pruned_inputs(model, dict(kwargs))
    _announce_images(model, ids, kwargs)
    out = stock_generate(**kwargs)
    if isinstance(out, torch.Tensor):
        return torch.cat([ids, out], dim=1)
    out.sequences = torch.cat([ids, out.sequences], dim=1)  # return_dict_in_generate
    return out
