"""SAINT inside a Llama language model during prefill: the LLM half of SAINT's VLM modes.

``apply_patch(language_model, PrefillRule())`` hooks a transformers ``LlamaModel`` so that, in a
prefill (a forward that starts with an empty cache, or none) whose image tokens were announced
with :func:`expect_images`, after each decoder layer ``start..end`` (inclusive) every sample
drops image tokens by SAINT's bipartite rule (:func:`saint_export.reference.rule.saint_drop`, no
protected tokens) on that layer's keys (after RoPE, as the cache holds them) averaged over heads.
System and text tokens always stay; kept tokens keep their order and their original position
ids; later layers run on the shorter sequence; every layer's cache keeps the length it had; and
decoding goes on at the original prompt length with a per-layer mask (``cache._saint_valid``).

Batches: each sample votes its own r (the official code takes the batch mean, at batch 1 the same
rule), so a batch answers as each sample alone. After a drop the rows are left-padded to the
longest (padding never attends or is attended to, but for itself), so the last position is
always each sample's last real token, as ``generate`` expects.

Differences from the official code (github ArmenJeddi/saint, ``VLM/transformers``, Llama of a
transformers 4.31 fork, batch 1):

* the image span is found per sample from the image-token positions (upstream: a fixed system
  length of 36 and a configured span length); several images in a sample form one span;
* per-sample vote, left padding and a per-layer padding mask for decoding (upstream: batch mean,
  an all-ones mask, no mask while decoding);
* the rule's float32 similarity, epsilon and stable tie order (see ``rule.py``);
* decoding: upstream gives the first new token position T + 1 for a T-token prompt (its
  ``seq_length_with_past`` counts the new token on top of layer 0's cache), skipping position T;
  here it gets T, as stock transformers gives it; ``position_quirk=True`` reproduces upstream;
* the keys are recomputed from the layer's key projection and rotary embedding (what the cache
  stores), so prefill without a cache (``use_cache=False``) prunes too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...errors import ConfigError
from ..llava_saint import PrefillRule
from ..rule import saint_drop
from ..schedule import LayerRule

ATTENTION = ("sdpa", "eager")


@dataclass
class _State:
    """Shared by the hooks of one patched language model."""

    rule: PrefillRule
    enabled: bool = True
    pending: torch.Tensor | None = None  # [B, T] bool: the image tokens of the next prefill
    run: "_Prefill | _Decode | None" = None
    last_kept: list[list[int]] = field(default_factory=list)  # image tokens per sample after each pruning layer


def _layers(lm: torch.nn.Module) -> torch.nn.ModuleList:
    if type(lm).__name__ != "LlamaModel":
        raise ConfigError(f"SAINT's LLM pruning takes a transformers LlamaModel, not {type(lm).__name__}")
    return lm.layers


def apply_patch(lm: torch.nn.Module, rule: PrefillRule | None = None) -> torch.nn.Module:
    """Hook ``lm`` (a transformers LlamaModel, in place) for SAINT's prefill pruning and return it."""
    layers = _layers(lm)
    rule = (rule or PrefillRule()).validate(len(layers))
    attention = lm.config._attn_implementation or "eager"
    if attention not in ATTENTION:
        raise ConfigError(f"SAINT's LLM pruning builds its own masks for {list(ATTENTION)} attention; "
                          f"this model uses {attention!r} (load it with attn_implementation='sdpa')")
    if hasattr(lm, "_saint_prefill"):
        remove_patch(lm)
    state = _State(rule)
    hooks = [lm.register_forward_pre_hook(lambda m, a, kw: (a, _start(m, kw)), with_kwargs=True),
             lm.register_forward_hook(lambda m, a, out: setattr(m._saint_prefill, "run", None))]
    for j, layer in enumerate(layers):
        hooks.append(layer.register_forward_pre_hook(lambda m, a, kw, j=j: _before_layer(state, j, a, kw), with_kwargs=True))
        if rule.start <= j <= rule.end:
            hooks.append(layer.self_attn.k_proj.register_forward_hook(lambda m, a, out: _keep_keys(state, out)))
            hooks.append(layer.register_forward_hook(lambda m, a, kw, out, j=j: _after_layer(state, j, m, kw, out),
                                                     with_kwargs=True))
    lm._saint_prefill, lm._saint_prefill_hooks = state, hooks
    return lm


def remove_patch(lm: torch.nn.Module) -> torch.nn.Module:
    for hook in lm.__dict__.pop("_saint_prefill_hooks", []):
        hook.remove()
    lm.__dict__.pop("_saint_prefill", None)
    return lm


def set_enabled(lm: torch.nn.Module, enabled: bool) -> None:
    lm._saint_prefill.enabled = bool(enabled)


def expect_images(lm: torch.nn.Module, is_image: torch.Tensor | None) -> None:
    """Announce the image tokens ([B, T] bool) of the sequence the next forward of ``lm`` takes."""
    lm._saint_prefill.pending = is_image


def kept_counts(lm: torch.nn.Module) -> list[list[int]]:
    """Image tokens per sample after each pruning layer of the last pruned prefill."""
    return lm._saint_prefill.last_kept


# --------------------------------------------------------------------------- hooks

def _cache_of(kwargs: dict):
    return kwargs.get("cache", kwargs.get("past_key_values"))


def _sequence(kwargs) -> torch.Tensor | None:
    """The input ids [B, T] or embeddings [B, T, C] the language model was called with (keywords)."""
    embeds = kwargs.get("inputs_embeds")
    return embeds if embeds is not None else kwargs.get("input_ids")


def _mask2d(kwargs: dict) -> torch.Tensor | None:
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.dim() != 2:
        raise ConfigError("SAINT's LLM pruning needs a 2D attention mask (or none), not a prepared 4D one")
    return mask


def _start(lm: torch.nn.Module, kwargs: dict) -> dict:
    """Before the language model runs: the masks of a decode after a pruned prefill (whatever the
    switch says: they belong to the cache), or a pruned prefill."""
    state: _State = lm._saint_prefill
    pending, state.pending, state.run = state.pending, None, None
    cache = _cache_of(kwargs)
    if cache is not None and cache.get_seq_length() > 0:
        if getattr(cache, "_saint_valid", None):
            state.run = _Decode(cache, _mask2d(kwargs), lm.config._attn_implementation or "eager")
            if state.rule.position_quirk:
                kwargs = _shifted_positions(lm, cache, kwargs)
        return kwargs
    if cache is not None:  # an empty (reset) cache starts afresh
        cache.__dict__.pop("_saint_valid", None)
    sequence = _sequence(kwargs)
    if not state.enabled or pending is None or sequence is None or not bool(pending.any()):
        return kwargs
    if cache is not None and type(cache).__name__ != "DynamicCache":
        raise ConfigError(f"SAINT's LLM pruning keeps a shorter cache per layer: it needs a DynamicCache, not {type(cache).__name__}")
    batch = sequence.shape[0]
    if pending.shape[1] == sequence.shape[1] and batch % pending.shape[0] == 0:
        pending = pending.repeat_interleave(batch // pending.shape[0], dim=0)  # generate's beams / return sequences
    if pending.shape != sequence.shape[:2]:
        raise ConfigError(f"SAINT's LLM pruning: image mask {list(pending.shape)} does not fit the sequence {list(sequence.shape[:2])}")
    mask2d = _mask2d(kwargs)
    valid = torch.ones_like(pending) if mask2d is None else mask2d.bool()
    state.run = _Prefill(pending.to(sequence.device), valid.to(sequence.device), lm.config._attn_implementation or "eager")
    state.last_kept = []
    return kwargs


def _shifted_positions(lm, cache, kwargs: dict) -> dict:
    ids = kwargs.get("position_ids")
    if ids is None:
        sequence = _sequence(kwargs)
        ids = (torch.arange(sequence.shape[1], device=sequence.device) + cache.get_seq_length()).unsqueeze(0)
    return {**kwargs, "position_ids": ids + 1}


def _before_layer(state: _State, j: int, args: tuple, kwargs: dict):
    if state.run is None:
        return None
    return args, state.run.layer_inputs(j, args[0] if args else kwargs["hidden_states"], kwargs)


def _keep_keys(state: _State, keys: torch.Tensor) -> None:
    if isinstance(state.run, _Prefill):
        state.run.keys.append(keys)


def _after_layer(state: _State, j: int, layer, kwargs: dict, out: torch.Tensor):
    run = state.run
    if not isinstance(run, _Prefill):
        return None
    keys = _rotated_keys(layer, run.keys.pop(), kwargs["position_embeddings"])
    out, kept = run.prune(out, keys, state.rule)
    state.last_kept.append(kept)
    return out


def _rotated_keys(layer, keys: torch.Tensor, position_embeddings) -> torch.Tensor:
    """[B, T, Hkv * hd] key projection -> [B, T, hd]: after RoPE (as cached), averaged over heads."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attn = layer.self_attn
    b, t = keys.shape[:2]
    k = keys.view(b, t, -1, attn.head_dim).transpose(1, 2)
    cos, sin = position_embeddings
    _, k = apply_rotary_pos_emb(k, k, cos, sin)
    return k.mean(1)


def _attention_mask(allowed: torch.Tensor, kind: str, dtype: torch.dtype) -> torch.Tensor:
    """[B, q, kv] bool -> the 4D mask ``kind`` attention takes (sdpa: bool; eager: additive float)."""
    allowed = allowed.unsqueeze(1)
    if kind == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


class _Prefill:
    """One pruned prefill: which original token each row holds now, and the mask that goes with it."""

    def __init__(self, is_image: torch.Tensor, valid: torch.Tensor, kind: str):
        batch, t = is_image.shape
        self.is_image, self.valid, self.kind = is_image, valid, kind
        self.source = torch.arange(t, device=is_image.device).expand(batch, t)  # original position of each row
        self.pruned = False
        self.original: dict | None = None  # position ids and embeddings of the full sequence
        self.keys: list[torch.Tensor] = []  # the key projection of the pruning layer now running
        self._inputs: dict | None = None  # the current rows' positions and mask, built once per drop

    def layer_inputs(self, j: int, hidden: torch.Tensor, kwargs: dict) -> dict:
        if self.original is None:
            self.original = {"position_ids": kwargs.get("position_ids"), "position_embeddings": kwargs["position_embeddings"]}
        if not self.pruned:
            return kwargs
        if self._inputs is None:
            self._inputs = self.inputs(hidden.dtype)
        cache = _cache_of(kwargs)
        if cache is not None:  # this layer's cache holds the current rows: its decode mask
            cache.__dict__.setdefault("_saint_valid", {})[j] = self.valid
            cache._saint_prompt = int(self.original["position_embeddings"][0].shape[1])
        return {**kwargs, **self._inputs}

    def inputs(self, dtype: torch.dtype) -> dict:
        """The position ids, rotary embeddings and mask of the current rows (gathered from the full sequence's)."""
        batch = self.source.shape[0]
        ids = self.original["position_ids"]
        inputs = {"position_ids": ids.expand(batch, -1).gather(1, self.source)} if ids is not None else {}
        inputs["position_embeddings"] = tuple(
            e.expand(batch, -1, -1).gather(1, self.source.unsqueeze(-1).expand(-1, -1, e.shape[-1]))
            for e in self.original["position_embeddings"])
        inputs["attention_mask"] = self.mask(dtype)
        return inputs

    def mask(self, dtype: torch.dtype) -> torch.Tensor | None:
        if self.kind == "sdpa" and bool(self.valid.all()):
            return None  # no padding: SDPA's causal kernel, as stock transformers uses it
        t = self.source.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=self.valid.device).tril()
        allowed = causal & self.valid.unsqueeze(1)
        allowed |= torch.eye(t, dtype=torch.bool, device=self.valid.device)  # padding rows attend to themselves
        return _attention_mask(allowed, self.kind, dtype)

    def prune(self, hidden: torch.Tensor, keys: torch.Tensor, rule: PrefillRule) -> tuple[torch.Tensor, list[int]]:
        """hidden [B, T, C], keys [B, T, hd] -> the kept rows, left-padded to the longest sample."""
        keep = self.valid & ~self.is_image
        kept = []
        for b in range(hidden.shape[0]):
            where = torch.nonzero(self.is_image[b] & self.valid[b]).squeeze(1)
            metric = keys[b:b + 1, where]
            survivors = saint_drop(metric, metric, LayerRule(threshold=rule.threshold, k=rule.k, gamma=rule.gamma), 0).kept_index[0]
            keep[b, where[survivors]] = True
            kept.append(int(survivors.numel()))
        t = hidden.shape[1]
        positions = torch.arange(t, device=hidden.device).expand_as(keep)
        length = int(keep.sum(1).max())
        order = torch.sort(torch.where(keep, positions, -1), dim=1).values[:, t - length:]  # kept rows last, in order
        filler = order < 0
        rows = order.clamp(min=0)
        self.valid = ~filler
        self.is_image = self.is_image.gather(1, rows) & self.valid
        self.source = self.source.gather(1, rows)
        self.pruned, self._inputs = True, None
        return hidden.gather(1, rows.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])), kept


class _Decode:
    """A forward after a pruned prefill: layers whose cache was shortened get their own mask."""

    def __init__(self, cache, mask2d: torch.Tensor | None, kind: str):
        self.cache, self.mask2d, self.kind = cache, mask2d, kind
        self._masks: dict[int, torch.Tensor | None] = {}  # by id of the layer's valid rows: layers after the last drop share one

    def layer_inputs(self, j: int, hidden: torch.Tensor, kwargs: dict) -> dict:
        valid = self.cache._saint_valid.get(j)
        if valid is None:
            return kwargs
        if id(valid) not in self._masks:
            self._masks[id(valid)] = self.mask(j, valid, hidden)
        return {**kwargs, "attention_mask": self._masks[id(valid)]}

    def mask(self, j: int, valid: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor | None:
        """Layer ``j``'s mask: its cached prompt rows where valid, then the new tokens (causal); None
        (attend to everything, the fast path) for one new token and no padding anywhere."""
        q = hidden.shape[1]
        new = self.cache.get_seq_length(j) - valid.shape[1] + q  # generated tokens incl. these
        tail = torch.ones(valid.shape[0], new, dtype=torch.bool, device=valid.device)
        if self.mask2d is not None:
            tail = self.mask2d[:, self.cache._saint_prompt:].bool()
            if tail.shape[1] != new:
                raise ConfigError(f"SAINT's LLM pruning: attention mask covers {tail.shape[1]} new tokens, the cache {new}")
        if q == 1 and bool(valid.all()) and bool(tail.all()):
            return None
        prompt = valid.unsqueeze(1).expand(-1, q, -1)
        causal = torch.ones(q, new, dtype=torch.bool, device=valid.device).tril(new - q)
        allowed = torch.cat([prompt, causal & tail.unsqueeze(1)], dim=2)
        return _attention_mask(allowed, self.kind, hidden.dtype)
