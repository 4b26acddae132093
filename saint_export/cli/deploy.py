"""``triton``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from ..serve.repository import python_repository_from_onnx

from .options import force_option, reports_errors


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
def triton_cmd(model, repo, name, plugin, max_batch, backend, instances, force) -> None:
    """Write a Triton model repository for MODEL: an engine (.plan, built by saint-export --engine;
    TensorRT backend with the plugin) or a portable ONNX model (.onnx; onnxruntime backend, no plugin).

    Dynamic batching stays off unless the schedule is batch-invariant (fixed_r in every pruning
    layer, or vote: sample): SAINT's vote takes the batch mean, so batching requests together
    would change their answers.
    """
    from ..tensorrt.sidecar import read_sidecar
    from ..tensorrt.triton import backend_config, triton_repository_from_engine, triton_repository_from_onnx

    if model.endswith(".onnx") and backend == "python":
        target = python_repository_from_onnx(Path(model), Path(repo), name, max_batch or 8, instances, force)
        click.echo(f"Triton model: {target} (python backend running onnxruntime; config.pbtxt validated)")
        click.echo(f"run: saint-export serve {Path(repo).resolve()}")
        return
    if backend == "python":
        raise ConfigError("--backend python takes a portable .onnx (an engine runs on the TensorRT backend)")
    if model.endswith(".onnx"):
        if plugin:
            raise ConfigError("--plugin: the portable ONNX carries SaintTokenDrop's function body and needs no plugin")
        target = triton_repository_from_onnx(Path(model), Path(repo), name, max_batch or 8, instances, force)
        click.echo(f"Triton model: {target} (onnxruntime backend; config.pbtxt validated with Triton's ModelConfig)")
        click.echo(f"run: tritonserver --model-repository={Path(repo).resolve()}")
        return
    target = triton_repository_from_engine(Path(model), Path(repo), name, Path(plugin) if plugin else None,
                                           max_batch, instances, force)
    click.echo(f"Triton model: {target} (config.pbtxt validated with Triton's ModelConfig)")
    flags = backend_config(read_sidecar(Path(model)), str(Path(target).resolve()))
    click.echo(f"run: tritonserver --model-repository={Path(repo).resolve()} {' '.join(flags)}".rstrip())


COMMANDS = [triton_cmd]
