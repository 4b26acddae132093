"""What SAINT does where in a LLaVA model: the configuration of the three VLM modes (plain data,
no transformers import; the patches are :mod:`saint_export.reference.patch.llava` and
:mod:`saint_export.reference.patch.llama_prefill`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class PrefillRule:
    """Which layers prune and how. Published LLM-only setting: layers 7..16, tau 0.83, K 5, gamma 10."""

    start: int = 7
    end: int = 16
    threshold: float = 0.83
    k: int = 5
    gamma: float = 10.0
    position_quirk: bool = False  # decode positions one past stock's, as upstream (see the module doc)

    def validate(self, depth: int) -> "PrefillRule":
        if not 0 <= self.start <= self.end < depth:
            raise ConfigError(f"LLM pruning layers {self.start}..{self.end} must lie in the language model's 0..{depth - 1}")
        if self.k < 1:
            raise ConfigError(f"LLM pruning K must be >= 1; got {self.k}")
        return self


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
    def prefill_rule(self) -> PrefillRule:
        return PrefillRule(self.llm_start, self.llm_end, self.llm_threshold, self.llm_k, self.llm_gamma, self.llm_position_quirk)

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
