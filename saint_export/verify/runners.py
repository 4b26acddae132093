"""Polygraphy runners, and the one comparison ``validate`` and ``check`` make through Polygraphy's
``Comparator`` with per-output tolerances (the default key ``""`` covers the rest).

* ``FunctionRunner`` — Polygraphy's runner interface over a function feed -> outputs: PyTorch
  (dense, or SAINT with each pruning block's ``kept_index``, which no Polygraphy runner can give).
* onnxruntime — Polygraphy's ``OnnxrtRunner`` over our session (providers, kept_index exposed).
* TensorRT — Polygraphy's ``TrtRunner`` (``saint_export.tensorrt.engine.engine_runner``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import ensure_writable_dir, made_by_saint_export, write_json, write_with
from ..polygraphy_log import quiet_polygraphy
from .compare import OutputCheck


def polygraphy():
    """Polygraphy's comparator and base runner, quiet."""
    quiet_polygraphy()
    from polygraphy.backend.base import BaseRunner
    from polygraphy.comparator import Comparator, SimpleCompareFunc

    return BaseRunner, Comparator, SimpleCompareFunc


def function_runner(name: str, fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                    input_shape: tuple[int, ...]):
    """A Polygraphy runner named ``name`` whose inference is ``fn`` on the feed dict ``{"pixels": [B, *input_shape]}``."""
    BaseRunner, _, _ = polygraphy()
    from polygraphy.common import TensorMetadata

    class FunctionRunner(BaseRunner):
        def activate_impl(self):
            pass

        def deactivate_impl(self):
            pass

        def get_input_metadata_impl(self):
            return TensorMetadata().add("pixels", np.float32, (-1, *input_shape))

        def infer_impl(self, feed_dict):
            start = time.perf_counter()
            out = {name: np.ascontiguousarray(value) for name, value in fn(feed_dict).items()}
            self.inference_time = time.perf_counter() - start
            return out

    return FunctionRunner(name=name)


def compare(runners: list, feed: dict[str, np.ndarray], tolerances: dict[str, tuple[float, float]],
            reference: str, skip: tuple[str, ...] = ()) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, OutputCheck]]]:
    """Run every runner on ``feed`` with ``Comparator.run`` and compare each one not in ``skip`` with
    ``reference`` (``SimpleCompareFunc``, shapes checked, ``tolerances``: name -> (atol, rtol), key
    ``""`` = every other output). Returns (outputs per runner, an :class:`OutputCheck` per output per
    runner: Polygraphy's verdict, max abs error and max error relative to the reference).

    Polygraphy's elementwise rule: an element fails when it exceeds both atol and rtol·|reference|
    (``polygraphy run --atol --rtol`` applies the same rule; ``numpy.allclose`` would use their sum)."""
    _, Comparator, SimpleCompareFunc = polygraphy()
    with np.errstate(divide="ignore", invalid="ignore"):  # relative errors of equal integers are 0 / 0
        results = Comparator.run(runners, data_loader=[feed])
        outputs = {name: {k: np.asarray(v) for k, v in iterations[0].items()} for name, iterations in results}
        names = [name for name, _ in results]
        ref = names.index(reference)
        # (other, reference): Polygraphy divides by the second output, so relative errors are against the reference
        pairs = [(i, ref) for i, name in enumerate(names) if i != ref and name not in skip]
        func = SimpleCompareFunc(atol={k: a for k, (a, _) in tolerances.items()}, rtol={k: r for k, (_, r) in tolerances.items()})
        accuracy = Comparator.compare_accuracy(results, compare_func=func, comparisons=pairs, fail_fast=False)
    checks: dict[str, dict[str, OutputCheck]] = {}
    for accuracy_result in accuracy:
        for (other, _), iterations in accuracy_result.items():
            checks[other] = {output: _output_check(output, outputs[reference][output], outputs[other][output],
                                                   verdict, tolerances) for output, verdict in iterations[0].items()}
    return outputs, checks


def _output_check(name: str, ref: np.ndarray, got: np.ndarray, result, tolerances) -> OutputCheck:
    """Polygraphy's result for one output (False alone when the shapes differ) as an OutputCheck."""
    atol, rtol = tolerances.get(name, tolerances.get("", (0.0, 0.0)))
    if ref.shape != got.shape or not hasattr(result, "max_absdiff"):
        return OutputCheck(name, list(ref.shape), list(got.shape), float("nan"), float("nan"), atol, rtol, False, "shape mismatch")
    return OutputCheck(name, list(ref.shape), list(got.shape), float(result.max_absdiff),
                       float(result.max_reldiff) if ref.dtype.kind == "f" else 0.0, atol, rtol, bool(result))


def save_for_polygraphy(folder: Path, feed: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                        runner_name: str = "pytorch", force: bool = False) -> tuple[Path, Path]:
    """Write ``inputs.json`` (for ``polygraphy run --load-inputs``) and ``pytorch_outputs.json``
    (``--load-outputs``: compared against every runner of that command) in Polygraphy's formats,
    plus ``saint_export.json`` naming them: a folder with it is ours, and a re-run replaces it."""
    polygraphy()
    from polygraphy.comparator import RunResults
    from polygraphy.comparator.struct import IterationResult
    from polygraphy.json import save_json

    folder = Path(folder)
    ensure_writable_dir(folder)
    inputs, outputs, marker = folder / "inputs.json", folder / f"{runner_name}_outputs.json", folder / "saint_export.json"
    force = force or made_by_saint_export(marker)
    results = RunResults()
    results.append((runner_name, [IterationResult(dict(reference), runner_name=runner_name)]))
    write_with(inputs, lambda tmp: save_json([dict(feed)], str(tmp)), force)
    write_with(outputs, lambda tmp: results.save(str(tmp)), force)
    write_json(marker, {"polygraphy": {"inputs": inputs.name, "outputs": outputs.name, "use": POLYGRAPHY_USE}}, force)
    return inputs, outputs


POLYGRAPHY_USE = "polygraphy run MODEL.onnx --onnxrt --load-inputs inputs.json --load-outputs pytorch_outputs.json"
