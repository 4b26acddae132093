"""What ``validate`` and ``check`` report beside Polygraphy's verdicts (``runners.compare``):
per-output tolerances, the rows of ``kept_index`` that differ, and fidelity to a reference that
suits the model's output (top-1 for classifiers; embedding cosine and nearest-neighbour agreement
for backbones, where an argmax means nothing)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, UsageError

DEFAULT_TOLERANCES = {"logits": (1e-4, 1e-4)}  # (atol, rtol); kept_index is exact in fp32
FP16_TOLERANCES = {"logits": (1e-2, 1e-2)}


@dataclass
class OutputCheck:
    name: str
    ref_shape: list[int]
    got_shape: list[int]
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    passed: bool
    note: str = ""


@dataclass
class ReportHead:
    """What a validation report starts with: the model, the artifact and its runtime, the inputs and the
    per-output checks."""

    model: str
    weights: str
    onnx: str
    provider: str
    batch: int
    inputs: list[str]
    outputs: list[OutputCheck]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def output_rows(checks: list[OutputCheck], width: int = 22) -> list[str]:
    """The table's header and one row per output: shapes, max abs and rel error, verdict and note."""
    lines = [f"{'output':<{width}} {'shape (ref)':<16} {'shape (onnx)':<16} {'max abs':>10} {'max rel':>10}  result"]
    for o in checks:
        lines.append(f"{o.name:<{width}} {str(o.ref_shape):<16} {str(o.got_shape):<16} {o.max_abs:>10.3g} {o.max_rel:>10.3g}  "
                     f"{'PASS' if o.passed else 'FAIL'}{(' ' + o.note) if o.note else ''}")
    return lines


def parse_tolerances(items: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``name=atol`` or ``name=atol:rtol`` -> {name: (atol, rtol)}. Malformed: UsageError (exit 2); a
    tolerance that is not a finite number >= 0 (NaN would switch the check off): ConfigError (exit 3)."""
    tol: dict[str, tuple[float, float]] = {}
    for item in items:
        name, eq, spec = item.partition("=")
        parts = spec.split(":")
        try:
            if not eq or not name.strip() or not 1 <= len(parts) <= 2:
                raise ValueError
            values = [float(v) for v in parts]
        except ValueError:
            raise UsageError(f"--tol {item!r}: expected NAME=ATOL or NAME=ATOL:RTOL with numbers") from None
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise ConfigError(f"--tol {item!r}: tolerances must be finite numbers >= 0")
        if name in tol:
            raise ConfigError(f"--tol: {name!r} given twice")
        tol[name] = (values[0], values[1] if len(values) == 2 else DEFAULT_TOLERANCES.get(name, (0.0, 0.0))[1])
    return tol


def check_tolerance_names(tolerances: dict[str, tuple[float, float]], outputs) -> None:
    """Every ``--tol`` name is an output being compared (or ``""``, the default): a typo is not ignored."""
    unknown = sorted(set(tolerances) - {""} - set(outputs))
    if unknown:
        raise ConfigError(f"--tol {unknown[0]}: no such output; the outputs compared are {', '.join(sorted(outputs))}")


def index_note(ref: np.ndarray, got: np.ndarray, exact: bool = True) -> str:
    """How many rows of a ``kept_index`` [B, N'] differ from the reference's (same shapes): the fp16
    flip report (Polygraphy's verdict has no count of rows)."""
    rows = int((ref != got).any(axis=-1).sum())
    return "identical" if not rows else f"{rows} of {ref.shape[0]} rows differ" + ("" if exact else " (fp16: reported, not failed)")


def agreement(got: np.ndarray, ref: np.ndarray, classifier: bool) -> dict[str, float]:
    """Fidelity of ``got`` [B, K] to ``ref`` [B, K].

    Classifiers: ``top1`` (fraction of rows with the same argmax) and ``kl`` (mean KL divergence of
    ``got``'s softmax from ``ref``'s, in nats). Backbones: ``cosine`` (mean
    per-row cosine), ``cosine_min`` (worst row) and ``nn`` (fraction of rows whose nearest other
    row in the batch, by cosine, is the same as in ``ref``; 1.0 for batch 1).
    """
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if classifier:
        log_p, log_q = _log_softmax(ref), _log_softmax(got)
        kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)
        return {"top1": float((got.argmax(-1) == ref.argmax(-1)).mean()), "kl": float(kl.mean())}
    unit_g = got / np.maximum(np.linalg.norm(got, axis=-1, keepdims=True), 1e-12)
    unit_r = ref / np.maximum(np.linalg.norm(ref, axis=-1, keepdims=True), 1e-12)
    cos = (unit_g * unit_r).sum(-1)
    return {"cosine": float(cos.mean()), "cosine_min": float(cos.min()), "nn": _neighbour_agreement(unit_g, unit_r)}


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _neighbour_agreement(unit_g: np.ndarray, unit_r: np.ndarray) -> float:
    if unit_g.shape[0] < 2:
        return 1.0
    sim_g, sim_r = unit_g @ unit_g.T, unit_r @ unit_r.T
    np.fill_diagonal(sim_g, -np.inf)
    np.fill_diagonal(sim_r, -np.inf)
    return float((sim_g.argmax(-1) == sim_r.argmax(-1)).mean())


def describe_agreement(values: dict[str, float]) -> str:
    if "top1" in values:
        return f"top-1 {values['top1']:.0%}" + (f", KL {values['kl']:.3g}" if "kl" in values else "")
    return f"cosine {values['cosine']:.4f} (worst {values['cosine_min']:.4f}), nearest neighbour {values['nn']:.0%}"
