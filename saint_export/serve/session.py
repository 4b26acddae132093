"""What ``saint-export serve`` does between parsing and printing: the repository to serve (a given
one, or a temporary one built from a .onnx), the models in it, their readiness as Triton reports
it, and waiting for Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import time
import urllib.request
from pathlib import Path

from ..errors import InputError
from .repository import python_repository_from_onnx
from .server import HOST, TritonServer


def temporary_repository(onnx_files: list[Path], root: Path, max_batch: int) -> Path:
    """A python-backend repository for ``onnx_files`` under ``root`` (the caller's temp folder), each
    model named after its file (a SAINT model and its dense twin share an alias)."""
    repo = root / "repo"
    for path in onnx_files:
        python_repository_from_onnx(path, repo, re.sub(r"[^A-Za-z0-9_-]", "_", path.stem), max_batch=max_batch)
    return repo


def repository_models(repo: Path) -> dict[str, Path]:
    """name -> the newest version's model.onnx, for every python-backend model in ``repo``."""
    models = {}
    for folder in sorted(Path(repo).iterdir()):
        versions = sorted((v for v in folder.glob("*/model.onnx") if v.parent.name.isdigit()), key=lambda v: int(v.parent.name))
        if (folder / "config.pbtxt").is_file() and versions:
            models[folder.name] = versions[-1]
    if not models:
        raise InputError(f"{repo} has no model with a numbered version folder holding model.onnx")
    return models


def check_repository(repo: Path) -> None:
    """A python-backend model without ``N/model.py`` would leave Triton waiting on its stub: refuse it."""
    if not Path(repo).is_dir():
        raise InputError(f"model repository {repo} is not a folder")
    for config in sorted(Path(repo).glob("*/config.pbtxt")):
        python = re.search(r'^\s*backend:\s*"python"', config.read_text(errors="replace"), re.M)
        if python and not any(p.parent.name.isdigit() for p in config.parent.glob("*/model.py")):
            raise InputError(f"{config.parent}: a python-backend model needs a version folder with model.py "
                             f"(write one with 'saint-export triton MODEL.onnx --repo {repo} --backend python')")


def model_states(server: TritonServer) -> list[dict]:
    """Triton's repository index: name, version, state and reason of every model."""
    request = urllib.request.Request(f"http://{HOST}:{server.ports.http}/v2/repository/index", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGTERM interrupts like Ctrl-C, so the caller's ``finally`` stops the server at any point."""
    signal.signal(signal.SIGTERM, _interrupt)


def wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM (with ``stop_on_signals``)."""
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        return
