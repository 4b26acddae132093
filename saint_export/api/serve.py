"""The serving job: a model repository (or a portable .onnx, given a temporary python-backend
repository) on the bundled Triton server on 127.0.0.1, until Ctrl-C / SIGTERM, or for a bounded load
run (``bench``) whose report is written to OUT/MODEL/serve_bench.json."""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..serve import load
from ..serve.install import server_install
from ..serve.server import Ports, TritonServer
from ..serve.session import (
    check_repository,
    model_states,
    repository_models,
    stop_on_signals,
    temporary_repository,
    wait_for_signal,
)
from .reports import FilesReport

Echo = Callable[[str], None]


@dataclass(frozen=True)
class ServeOptions:
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = 8  # max_batch_size of a .onnx's temporary repository
    dense: str | Path | None = None  # a dense .onnx served beside a .onnx target, for the bench's dense vs SAINT
    poll: bool = False  # --model-control-mode=poll
    bench: bool = False  # run the load generator against every model, write the report, stop
    requests: int = 64  # bench: requests per run
    out: str | Path = "out"


def serve(target: str | Path, options: ServeOptions = ServeOptions(), echo: Echo = print,
          progress: Echo = lambda s: None) -> FilesReport:
    """Start the server, ``echo`` its endpoints and model states once ready, then serve until a signal
    (or, with ``options.bench``, measure and stop). The server is stopped on every way out."""
    path = Path(target)
    if not path.exists():
        raise InputError(f"{target} does not exist")
    if path.suffix != ".onnx":
        check_repository(path)
    stop_on_signals()
    install = server_install(progress)
    with tempfile.TemporaryDirectory(prefix="saint-serve.") as tmp:
        onnx = [path] + ([Path(options.dense)] if options.dense else []) if path.suffix == ".onnx" else []
        repo = temporary_repository(onnx, Path(tmp), options.max_batch) if onnx else path
        ports = Ports(options.http_port, options.grpc_port, options.metrics_port)
        server = TritonServer(install, repo, ports, poll=options.poll, log=Path(tmp) / "server.log")
        measured = None
        try:
            server.start()
            for line in ready_lines(server):
                echo(line)
            if options.bench:
                measured = _bench(server, repo, path.stem, options)
            else:
                echo("serving; Ctrl-C or SIGTERM stops the server")
                wait_for_signal()
        finally:
            server.stop()
    if measured is None:
        return FilesReport("server stopped")
    return FilesReport(f"{measured.table()}\nserver stopped", measured.data)


def ready_lines(server: TritonServer) -> list[str]:
    lines = list(server.ports.endpoints())
    for m in model_states(server):
        reason = f" ({m['reason']})" if m.get("reason") else ""
        lines.append(f"model {m['name']} version {m.get('version', '-')}: {m.get('state', 'UNKNOWN')}{reason}")
    return lines


def _bench(server: TritonServer, repo: Path, stem: str, options: ServeOptions) -> FilesReport:
    rows = load.bench(f"127.0.0.1:{server.ports.grpc}", repository_models(repo), options.requests)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, onnxruntime CPU in the python backend"
    report = load.write_report(Path(options.out) / stem / "serve_bench.json", rows, machine)
    return FilesReport(load.table(rows), {"rows": rows}, {"report": report})
