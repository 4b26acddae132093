"""``serve``: run a model repository (or a .onnx) on the bundled Triton server, on loopback."""

from __future__ import annotations

import click

from ..api.serve import ServeOptions, serve
from .options import echo_report, reports_errors


@click.command("serve")
@click.argument("target", type=click.Path())
@click.option("--http-port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--grpc-port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=8002, show_default=True)
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True, help="max_batch_size for a .onnx.")
@click.option("--dense", type=click.Path(dir_okay=False), default=None,
              help="A dense .onnx served beside TARGET (.onnx), for --bench's dense vs SAINT.")
@click.option("--poll", is_flag=True, help="--model-control-mode=poll: new version folders are loaded while serving.")
@click.option("--bench", is_flag=True, help="Run the load generator against every model, write serve_bench.json, stop.")
@click.option("--requests", type=click.IntRange(min=1), default=64, show_default=True, help="--bench: requests per run.")
@click.option("--out", type=click.Path(file_okay=False), default="out", show_default=True, help="--bench: out/MODEL/serve_bench.json.")
@reports_errors
def serve_cmd(*, target, http_port, grpc_port, metrics_port, max_batch, dense, poll, bench, requests, out) -> None:
    """Serve TARGET (a Triton model repository, or a portable .onnx: a temporary python-backend
    repository is built for it) on 127.0.0.1 with the tritonserver bundled in the PyPI wheel
    nvidia-pytriton (set up once under ~/.cache/saint-export). Ctrl-C or SIGTERM stops it.
    """
    options = ServeOptions(http_port, grpc_port, metrics_port, max_batch, dense, poll, bench, requests, out)
    echo_report(serve(target, options, echo=click.echo, progress=lambda s: click.echo(s, err=True)))


COMMANDS = [serve_cmd]
