"""``triton``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import force_option, reports_errors


@click.command("triton")
@click.argument("engine", type=click.Path(dir_okay=False))
@click.option("--repo", required=True, type=click.Path(file_okay=False), help="Model repository folder.")
@click.option("--name", default=None, help="Model name in the repository [default: the engine's model alias].")
@click.option("--plugin", type=click.Path(dir_okay=False), default=None, help="libsaint_plugins.so to copy beside the model.")
@click.option("--max-batch", type=int, default=None, help="max_batch_size [default: the engine profile's max].")
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True, help="GPU instances.")
@force_option
@reports_errors
def triton_cmd(engine, repo, name, plugin, max_batch, instances, force) -> None:
    """Write a Triton model repository for ENGINE (a plan built by saint-export --engine).

    Dynamic batching stays off unless every pruning layer uses fixed_r: SAINT's vote takes
    the batch mean, so batching requests together would change their answers.
    """
    from ..tensorrt.triton import triton_repository_from_engine

    target = triton_repository_from_engine(Path(engine), Path(repo), name, Path(plugin) if plugin else None,
                                           max_batch, instances, force)
    click.echo(f"Triton model: {target} (config.pbtxt validated with Triton's ModelConfig)")
    click.echo(f"run: LD_PRELOAD={target}/libsaint_plugins.so tritonserver --model-repository={Path(repo).resolve()}")


COMMANDS = [triton_cmd]
