"""The checking jobs: ``check`` (every runtime present against PyTorch, optionally dataset top-1),
``bench`` (dense vs SAINT throughput, interleaved) and ``inspect`` (tokens, r and FLOPs per layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import bench as vit_bench
from ..errors import MissingDependencyError
from ..inputs import gather_inputs
from ..io import check_writable, write_json
from ..models.registry import resolve
from ..plots import plot_throughput
from ..runtimes import registry
from ..verify.check import as_json, comparison_table, run_check
from ..verify.compare import check_tolerance_names, parse_tolerances
from ..verify.inspect import inspect_model, write_inspect_outputs
from . import llava
from .options import ArtifactSpec, BenchOptions, CheckOptions, ModelSpec
from .paths import output_folder
from .reports import FilesReport

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    pass


def check(target: str, artifact: ArtifactSpec = ArtifactSpec(), options: CheckOptions = CheckOptions(),
          progress: Progress = _silent) -> FilesReport:
    """Run PyTorch (dense, SAINT) and the runtimes on the same images and compare their logits.
    ``target``: a model name (exported to a temporary ONNX first), a portable ``.onnx`` or a ``.plan``."""
    if options.json:
        check_writable(options.json, options.force)
    tolerances = parse_tolerances(options.tol)
    check_tolerance_names(tolerances, ["logits"])  # check compares the logits of every backend
    result, dataset = run_check(target, model_name=artifact.model, checkpoint=artifact.checkpoint, weights=artifact.weights,
                                image_dir=options.images, batch=options.batch, dataset=options.dataset, limit=options.limit,
                                tolerance=tolerances.get("logits", (1e-4, 1e-4)), device=options.device,
                                backends=options.backends, on_bad_image=options.on_bad_image, progress=progress)
    lines = [comparison_table(result)] + ([dataset.table()] if dataset else [])
    lines.append("PASS" if result["passed"] else "FAIL: outputs outside tolerance (see the table)")
    data = as_json(result, dataset)
    if options.json:
        write_json(options.json, data, options.force)
    return FilesReport("\n".join(lines), data, {"report": Path(options.json)} if options.json else {}, bool(result["passed"]))


def require_backends(backends: tuple[str, ...], device: str) -> None:
    """Each runtime asked for is installed and runs on ``device``; a CUDA device is visible."""
    for name in backends:
        if name != "torch":
            registry.get(name, device).require()
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise MissingDependencyError("--device cuda: no CUDA GPU is visible to PyTorch")


def bench(model: ModelSpec, options: BenchOptions = BenchOptions(), progress: Progress = _silent) -> FilesReport:
    """Dense vs SAINT throughput per backend and batch size, round-robin (OUT/bench.json, bench.png);
    a LLaVA model: prefill and decode per mode."""
    if resolve(model.name).is_llava:
        return llava.bench(model, options, progress)
    if model.llava:
        raise llava.NOT_LLAVA
    batches = list(options.batches or (1, 8, 32))
    require_backends(tuple(options.backends), options.device)
    out_dir = output_folder(model.name, options.out)
    json_path, png_path = check_writable(out_dir / "bench.json", options.force), check_writable(out_dir / "bench.png", options.force)
    built = model.build()
    rows, times, ratios, tokens = vit_bench.run_bench(built, tuple(options.backends), batches, image_dir=options.images,
                                                      device=options.device, warmup=options.warmup, iters=options.iters,
                                                      min_seconds=options.min_seconds, progress=progress)
    summary = vit_bench.summarize(rows, times, ratios)
    data = vit_bench.report_json(built.config.alias, rows, summary, {"tokens_after_each_block": tokens,
                                                                     "schedule": built.schedule.to_json()})
    write_json(json_path, data, options.force)
    plot_throughput(png_path, f"{built.config.alias}: dense vs SAINT", batches, vit_bench.throughput_series(rows, batches),
                    options.force)
    return FilesReport(vit_bench.summary_table(summary, times), data, {"report": json_path, "plot": png_path})


def inspect(model: ModelSpec, images: tuple[str, ...] = (), image_dir: str | None = None, *, synthetic: bool = False,
            photos: bool = False, out: str | Path | None = None, plot: str | Path | None = None,
            json: str | Path | None = None, force: bool = False) -> FilesReport:
    """Tokens per layer, r per pruning layer and FLOPs, dense vs SAINT, on one batch (OUT/tokens.png, OUT/inspect.json)."""
    out_dir = output_folder(model.name, out)
    plot_path, json_path = Path(plot or out_dir / "tokens.png"), Path(json or out_dir / "inspect.json")
    for path in (plot_path, json_path):
        check_writable(path, force)
    built = model.build()
    pixels, names = gather_inputs(built.config, images, image_dir, 8 if synthetic else 0, photos)
    report = inspect_model(built, pixels, names)
    write_inspect_outputs(report, plot_path, json_path, force)
    return FilesReport(report.table(), report.to_json(), {"plot": plot_path, "report": json_path})
