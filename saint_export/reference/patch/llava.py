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

import contextlib
import functools
import inspect
from typing import Any, Iterator

import torch

from ...errors import ConfigError
from ..iterative import iterative_drop
from ..llava_saint import LlavaSaint
from ..schedule import build_schedule
from . import llama_prefill
from . import transformers as hfpatch

HOST = "llava"


def _tower(model: torch.nn.Module) -> torch.nn.Module:
    inner = getattr(model, "model", None)
    tower = getattr(inner, "vision_tower", None)
    if type(model).__name__ != "LlavaForConditionalGeneration" or tower is None:
        raise ConfigError(f"SAINT's LLaVA patch takes a transformers LlavaForConditionalGeneration, not {type(model).__name__}")
    return tower


def apply_patch(model: torch.nn.Module, saint: LlavaSaint | None = None) -> torch.nn.Module:
    """Patch ``model`` (in place) for the mode ``saint`` names (default: ViT-only, published settings) and return it."""
    saint = saint or LlavaSaint()
    tower = _tower(model)
    if hasattr(model, "_saint_llava"):
        remove_patch(model)
    vision = tower.config
    saint.validate(vision.num_hidden_layers, (vision.image_size // vision.patch_size) ** 2 + 1)
    if saint.prunes_llm:
        llama_prefill.apply_patch(_language_model(model), saint.prefill_rule)
    if saint.prunes_tower:
        patch_tower(tower, saint)
    model._saint_llava = model._saint_schedule = saint
    model._saint_host = HOST
    model._saint_llava_hooks = [model.register_forward_pre_hook(_before_forward, with_kwargs=True),
                                model.register_forward_hook(_forget_images, always_call=True)]
    model.generate = functools.partial(_generate, model, type(model).generate.__get__(model))
    return model


def patch_tower(tower: torch.nn.Module, saint: LlavaSaint) -> torch.nn.Module:
    """The CLIP tower (in place) with ``saint``'s rule after the attention residual of ``vit_layer``:
    the iterative drop, or SAINT's bipartite rule (the transformers patch's own)."""
    schedule = build_schedule({"layers": [saint.vit_layer], "threshold": saint.threshold, "k": saint.k, "gamma": saint.gamma},
                              tower.config.num_hidden_layers)
    hfpatch.apply_patch(tower, schedule, protected=1)
    if saint.rule == "iterative":
        layer = hfpatch.saint_layers(tower)[saint.vit_layer]
        layer._saint_drop = functools.partial(_iterative, keep=saint.keep, divisor=saint.divisor, quirk=saint.quirk)
    return tower


def _language_model(model: torch.nn.Module) -> torch.nn.Module:
    return model.model.language_model


def _iterative(x: torch.Tensor, metric: torch.Tensor, keep: int, divisor: int, quirk: bool) -> torch.Tensor:
    return iterative_drop(x, metric, keep, divisor, protected=1, quirk=quirk).tokens


def remove_patch(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`apply_patch`: stock tower, language model and ``generate``."""
    if hfpatch.is_patched(_tower(model)):
        hfpatch.remove_patch(_tower(model))
    llama_prefill.remove_patch(_language_model(model))
    for hook in model._saint_llava_hooks:
        hook.remove()
    for name in ("_saint_llava", "_saint_schedule", "_saint_host", "_saint_llava_hooks", "generate"):
        model.__dict__.pop(name, None)
    return model


def _set_pruning(model: torch.nn.Module, enabled: bool) -> None:
    """LLaVA half of the shared ``set_pruning``: the tower and the language model together."""
    if model._saint_llava.prunes_tower:
        hfpatch._set_pruning(_tower(model), enabled)
    if model._saint_llava.prunes_llm:
        llama_prefill.set_enabled(_language_model(model), enabled)


PARTS = {"dense": (False, False), "vit": (True, False), "llm": (False, True), "hybrid": (True, True)}


@contextlib.contextmanager
def use_mode(model: torch.nn.Module, mode: str) -> Iterator[None]:
    """Run a model patched in ``hybrid`` mode as ``dense``, ``vit``, ``llm`` or ``hybrid`` inside the
    block (the two parts switched on or off); both parts are on again after it."""
    if mode not in PARTS:
        raise ConfigError(f"mode must be one of {list(PARTS)}; got {mode!r}")
    if getattr(model, "_saint_llava", None) is None or model._saint_llava.mode != "hybrid":
        raise ConfigError("use_mode needs a model patched in hybrid mode (both parts)")
    tower, llm = PARTS[mode]
    hfpatch._set_pruning(_tower(model), tower)
    llama_prefill.set_enabled(_language_model(model), llm)
    try:
        yield
    finally:
        _set_pruning(model, True)


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


def with_image_embeds(model: torch.nn.Module, image_embeds: torch.Tensor, **inputs: Any) -> tuple[dict[str, Any], torch.Tensor]:
    """A LLaVA prompt with images encoded elsewhere (the exported vision encoder, ``saint-export MODEL --vision``).

    ``image_embeds`` [I, M, H]: the batch's I images in prompt order, M features each (any M up to the
    processor's placeholder count). ``inputs``: ``input_ids`` [B, T] with the processor's image
    placeholders, and optionally ``attention_mask``, ``position_ids``, ``labels`` and anything else for
    the model. Every run of placeholders is cut to M (the other tensors follow) and the features are
    scattered into the token embeddings. Returns (keyword arguments for ``model(...)`` or
    ``model.generate(...)``, with ``inputs_embeds`` instead of ``input_ids``; the shortened ids)."""
    inner, token = model.model, model.config.image_token_id
    ids = inputs.pop("input_ids")
    names = ("attention_mask", "position_ids", "labels")
    ids, *rest = shorten_spans(ids, token, image_embeds.shape[1], *(inputs.get(n) for n in names))
    inputs.update({n: t for n, t in zip(names, rest) if t is not None})
    embeds = inner.get_input_embeddings()(ids)
    features = image_embeds.reshape(-1, image_embeds.shape[-1]).to(embeds.device, embeds.dtype)
    if int((ids == token).sum()) != features.shape[0]:
        raise ConfigError(f"LLaVA: {image_embeds.shape[0]} image(s) of features for {int((ids == token).sum()) // max(image_embeds.shape[1], 1)} "
                          "image placeholder run(s) in the prompt")
    inputs["inputs_embeds"] = embeds.masked_scatter((ids == token).unsqueeze(-1), features)
    _announce_images(model, ids, inputs)  # LLM pruning (llm, hybrid): where the image tokens now are
    return inputs, ids


def _pruned_inputs(model: torch.nn.Module, kwargs: dict[str, Any]) -> tuple[dict[str, Any], torch.Tensor]:
    """Run the pruned tower once and hand the language model ``inputs_embeds`` (:func:`with_image_embeds`)."""
    features = model.model.get_image_features(pixel_values=kwargs.pop("pixel_values"), return_dict=True).pooler_output
    return with_image_embeds(model, torch.stack(list(features)), **kwargs)


def _announce_images(model, ids: torch.Tensor | None, kwargs: dict[str, Any]) -> None:
    """LLM pruning: tell the language model where the image tokens of this sequence are."""
    if ids is None or not llm_pruning_on(model):
        return
    if kwargs.get("labels") is not None:
        raise ConfigError("LLaVA SAINT: LLM pruning shortens the sequence inside the language model, so labels "
                          "(a loss) are refused; turn pruning off for training or scoring")
    llama_prefill.expect_images(_language_model(model), ids == model.config.image_token_id)


def _forget_images(model, *_) -> None:
    """After every forward, even a failed one: no announcement outlives the call it was made for."""
    if llm_pruning_on(model):
        llama_prefill.expect_images(_language_model(model), None)


def _before_forward(model, args, kwargs):
    if args:  # positional arguments as keywords, so the hook sees input_ids and pixel_values
        names = [p for p in inspect.signature(type(model).forward).parameters if p != "self"]
        kwargs = {**dict(zip(names, args)), **kwargs}
    ids = kwargs.get("input_ids")
    if kwargs.get("pixel_values") is not None and ids is not None and pruning_on(model):
        return (), _pruned_inputs(model, dict(kwargs))[0]  # announces the shortened prompt's images
    _announce_images(model, ids, kwargs)
    return ((), kwargs) if args else None


def _generate(model, stock_generate, *args, **kwargs):
    """``generate`` with the prompt shortened first when the tower prunes (the prefill then sees
    ``inputs_embeds``); returns the shortened prompt ids followed by the new tokens, as stock
    generate does for its prompt."""
    if len(args) == 1 or "inputs" in kwargs:  # generate(input_ids, ...) / generate(inputs=input_ids)
        kwargs["input_ids"] = args[0] if args else kwargs.pop("inputs")
        args = ()
    if args or kwargs.get("pixel_values") is None or kwargs.get("input_ids") is None or not pruning_on(model):
        return stock_generate(*args, **kwargs)
    try:
        with torch.no_grad():
            kwargs, ids = _pruned_inputs(model, dict(kwargs))
        out = stock_generate(**kwargs)
    finally:
        _forget_images(model)
    sequences = out if isinstance(out, torch.Tensor) else out.sequences
    ids = ids.repeat_interleave(sequences.shape[0] // ids.shape[0], dim=0)  # beams / return sequences
    if isinstance(out, torch.Tensor):
        return torch.cat([ids, out], dim=1)
    out.sequences = torch.cat([ids, out.sequences], dim=1)  # return_dict_in_generate
    return out
