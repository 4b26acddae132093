"""``triton``: arguments parsed into the API's options, one API call, its report printed."""

from __future__ import annotations

import click

from .. import api
from .options import echo_report, force_option, reports_errors


@click.command("triton")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Model repository folder.")
@click.option("--name", default=None, help="Model name in the repository [default: the model's alias].")
@click.option("--plugin", type=click.Path(dir_okay=False), default=None,
              help="libsaint_plugins_onload.so (or the libsaint_plugins.so it is built beside) to copy beside the model.")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="max_batch_size [default: the engine profile's max; 8 for ONNX].")
@click.option("--backend", type=click.Choice(["onnxruntime", "python"]), default="onnxruntime", show_default=True,
              help="For a .onnx: Triton's onnxruntime backend (production), or the python backend running onnxruntime "
                   "(what 'saint-export serve' runs on the bundled server).")
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True, help="GPU instances.")
@force_option
@reports_errors
def triton_cmd(*, model, repo, name, plugin, max_batch, backend, instances, force) -> None:
    """Write a Triton model repository for MODEL: an engine (.plan, built by saint-export --engine;
    TensorRT backend with the plugin) or a portable ONNX model (.onnx; onnxruntime backend, no plugin;
    --backend python: the python backend running onnxruntime, what 'saint-export serve' runs here).

    Dynamic batching stays off unless the schedule is batch-invariant (fixed_r in every pruning
    layer, or vote: sample): SAINT's vote takes the batch mean, so batching requests together
    would change their answers.
    """

    echo_report(api.triton_repository(model, api.TritonOptions(repo, name, plugin, max_batch, instances, force, backend)))


COMMANDS = [triton_cmd]
