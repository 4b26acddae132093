"""``serve``: run a model repository (or a .onnx) on the bundled Triton server, on loopback."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import click

from ..errors import InputError
from ..serve import load
from ..serve.install import server_install
from ..serve.server import Ports, TritonServer
from ..serve.session import check_repository, model_states, repository_models, stop_on_signals, temporary_repository, wait_for_signal
from .options import reports_errors


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
def serve_cmd(target, http_port, grpc_port, metrics_port, max_batch, dense, poll, bench, requests, out) -> None:
    """Serve TARGET (a Triton model repository, or a portable .onnx: a temporary python-backend
    repository is built for it) on 127.0.0.1 with the tritonserver bundled in the PyPI wheel
    nvidia-pytriton (set up once under ~/.cache/saint-export). Ctrl-C or SIGTERM stops it.
    """
    path = Path(target)
    if not path.exists():
        raise InputError(f"{target} does not exist")
    if path.suffix != ".onnx":
        check_repository(path)
    stop_on_signals()
    install = server_install(lambda s: click.echo(s, err=True))
    with tempfile.TemporaryDirectory(prefix="saint-serve.") as tmp:
        onnx = [path] + ([Path(dense)] if dense else []) if path.suffix == ".onnx" else []
        repo = temporary_repository(onnx, Path(tmp), max_batch) if onnx else path
        server = TritonServer(install, repo, Ports(http_port, grpc_port, metrics_port), poll=poll, log=Path(tmp) / "server.log")
        try:
            server.start()
            report_ready(server)
            if bench:
                run_bench(server, repo, path.stem, requests, Path(out))
            else:
                click.echo("serving; Ctrl-C or SIGTERM stops the server")
                wait_for_signal()
        finally:
            server.stop()
    click.echo("server stopped")


def report_ready(server: TritonServer) -> None:
    for line in server.ports.endpoints():
        click.echo(line)
    for m in model_states(server):
        reason = f" ({m['reason']})" if m.get("reason") else ""
        click.echo(f"model {m['name']} version {m.get('version', '-')}: {m.get('state', 'UNKNOWN')}{reason}")


def run_bench(server: TritonServer, repo: Path, stem: str, requests: int, out: Path) -> None:
    models = repository_models(repo)
    rows = load.bench(f"127.0.0.1:{server.ports.grpc}", models, requests)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, onnxruntime CPU in the python backend"
    report = load.write_report(out / stem / "serve_bench.json", rows, machine)
    click.echo(load.table(rows))
    click.echo(f"report: {report}")


COMMANDS = [serve_cmd]
