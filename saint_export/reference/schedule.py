"""Per-layer pruning schedule: which blocks run the rule, and with which parameters."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ..errors import ConfigError

DEFAULT_THRESHOLD = 0.75
DEFAULT_K = 5
DEFAULT_GAMMA = 10.0
VOTES = ("batch", "sample")  # r from the batch mean (SAINT) | from each sample alone (batch-invariant)


@dataclass(frozen=True)
class LayerRule:
    """Parameters of the drop rule at one block."""

    threshold: float = DEFAULT_THRESHOLD
    k: int = DEFAULT_K
    gamma: float = DEFAULT_GAMMA
    fixed_r: int = -1

    def validate(self, where: str = "") -> "LayerRule":
        at = f" ({where})" if where else ""
        if not isinstance(self.threshold, (int, float)) or isinstance(self.threshold, bool) or not -1.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"threshold must be a number in [-1, 1]{at}; got {self.threshold!r}")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ConfigError(f"k must be an integer >= 1{at}; got {self.k!r}")
        if not isinstance(self.gamma, (int, float)) or isinstance(self.gamma, bool) or not math.isfinite(self.gamma):
            raise ConfigError(f"gamma must be a finite number{at}; got {self.gamma!r}")
        if not isinstance(self.fixed_r, int) or isinstance(self.fixed_r, bool) or self.fixed_r < -1:
            raise ConfigError(f"fixed_r must be an integer >= -1 (-1 = vote){at}; got {self.fixed_r!r}")
        return self


@dataclass(frozen=True)
class Schedule:
    """Block index -> LayerRule. Blocks not listed run unpruned. ``vote`` applies to every layer."""

    rules: tuple[tuple[int, LayerRule], ...]
    vote: str = "batch"

    @property
    def layers(self) -> list[int]:
        return [i for i, _ in self.rules]

    def as_dict(self) -> dict[int, LayerRule]:
        return dict(self.rules)

    def is_fixed(self) -> bool:
        """True when every pruning layer drops a fixed count (output does not depend on batch mates)."""
        return all(rule.fixed_r >= 0 for _, rule in self.rules)

    @property
    def per_sample(self) -> bool:
        return self.vote == "sample" and bool(self.rules)

    def batch_invariant(self) -> bool:
        """True when a sample's output does not depend on its batch mates (fixed counts or per-sample votes)."""
        return self.is_fixed() or self.per_sample

    def to_json(self) -> list[dict[str, Any]]:
        """One row per pruning layer; rows carry ``vote`` only in per-sample mode."""
        extra = {"vote": self.vote} if self.vote != "batch" else {}
        return [{"layer": i, **asdict(rule), **extra} for i, rule in self.rules]

    def as_overrides(self) -> dict[str, Any]:
        """This exact schedule as config ``schedule:`` fields (per-layer lists)."""
        return overrides_from_rows(self.to_json())

    def describe(self) -> str:
        """``block 0 tau=0.75 K=5, block 1 ...`` (``fixed_r`` shown where set)."""
        return ", ".join(f"block {i} tau={r.threshold:g} K={r.k}" + (f" fixed_r={r.fixed_r}" if r.fixed_r >= 0 else "")
                         for i, r in self.rules) + (", vote per sample" if self.per_sample else "") or "no pruning layers"

    @classmethod
    def from_rules(cls, rules: Mapping[int, LayerRule], vote: str = "batch") -> "Schedule":
        if vote not in VOTES:
            raise ConfigError(f"vote must be one of {list(VOTES)}; got {vote!r}")
        return cls(tuple(sorted((int(i), r.validate(f"layer {i}")) for i, r in rules.items())), vote)


LAYER_FIELDS = ("layers", "threshold", "k", "gamma", "fixed_r")
SCHEDULE_FIELDS = (*LAYER_FIELDS, "vote")


def overrides_from_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``Schedule.to_json()`` rows -> config ``schedule:`` fields; no rows -> no pruning layers."""
    if not rows:
        return {"layers": "none"}
    fields = {key: [row["layer" if key == "layers" else key] for row in rows] for key in LAYER_FIELDS}
    votes = {row.get("vote", "batch") for row in rows}
    return {**fields, "vote": votes.pop()} if votes != {"batch"} else fields


def parse_layers(spec: Any, depth: int) -> list[int]:
    """``first_half`` | ``all`` | ``none`` | ``"0-5"`` | ``"0,2,4"`` | list of ints -> sorted block indices."""
    if spec is None or spec == "first_half":
        return list(range(depth // 2))
    if spec == "all":
        return list(range(depth))
    if spec == "none" or spec == []:
        return []
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = [spec]
    if isinstance(spec, str):
        out: list[int] = []
        for part in spec.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    lo, hi = (int(v) for v in part.split("-", 1))
                    if lo > hi:  # read as an empty range it would silently prune nothing
                        raise ConfigError(f"layers: range {part!r} runs backwards; write {hi}-{lo}")
                    out.extend(range(lo, hi + 1))
                else:
                    out.append(int(part))
            except ValueError:
                raise ConfigError(f"layers: cannot read {spec!r}; use first_half, all, none, '0-5' or '0,2,4'") from None
        spec = out
    if not isinstance(spec, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in spec):
        raise ConfigError(f"layers: expected first_half, all, none, a range string or a list of integers; got {spec!r}")
    bad = [i for i in spec if not 0 <= i < depth]
    if bad:
        raise ConfigError(f"layers: {bad} outside the model's blocks 0..{depth - 1}")
    if len(set(spec)) != len(spec):
        raise ConfigError(f"layers: duplicate entries in {list(spec)}")
    return sorted(spec)


def _per_layer(name: str, value: Any, n: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"{name}: per-layer list has {len(value)} entries for {n} pruning layers")
        return list(value)
    return [value] * n


def build_schedule(spec: Mapping[str, Any] | None, depth: int) -> Schedule:
    """Build a Schedule from a config's ``schedule:`` mapping (every field optional).

    Each of threshold, k, gamma and fixed_r is a scalar or a list with one entry
    per pruning layer; ``vote`` (``batch`` | ``sample``) is one value for all.
    """
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(SCHEDULE_FIELDS))
    if unknown:
        raise ConfigError(f"schedule: unknown field(s) {unknown}; allowed: {list(SCHEDULE_FIELDS)}")
    layers = parse_layers(spec.get("layers"), depth)
    n = len(layers)
    cols = {
        "threshold": _per_layer("threshold", spec.get("threshold", DEFAULT_THRESHOLD), n),
        "k": _per_layer("k", spec.get("k", DEFAULT_K), n),
        "gamma": _per_layer("gamma", spec.get("gamma", DEFAULT_GAMMA), n),
        "fixed_r": _per_layer("fixed_r", spec.get("fixed_r", -1), n),
    }
    rules = {}
    for j, layer in enumerate(layers):
        gamma = cols["gamma"][j]
        rules[layer] = LayerRule(
            threshold=cols["threshold"][j],
            k=cols["k"][j],
            gamma=float(gamma) if isinstance(gamma, int) and not isinstance(gamma, bool) else gamma,
            fixed_r=cols["fixed_r"][j],
        )
    return Schedule.from_rules(rules, spec.get("vote", "batch"))


def merge_overrides(spec: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``spec`` with the non-None entries of ``overrides`` replacing its fields."""
    merged = dict(spec or {})
    merged.update({key: value for key, value in overrides.items() if value is not None})
    return merged
