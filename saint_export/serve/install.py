"""The Triton Inference Server that ``saint-export serve`` runs, set up once under a cache folder
and reused:

* ``server/``: ``tritonserver`` 2.51, its libraries and the python backend, unpacked from the PyPI
  wheel ``nvidia-pytriton==0.7.0`` (downloaded with ``pip download --no-deps``, never installed:
  the wheel pins ``numpy<2``, and the toolkit's environment has numpy 2);
* ``env/``: the serving environment the python backend's stub runs in (a venv of this Python with
  ``numpy<2`` and onnxruntime: with numpy 2 the backend returns empty outputs).

The folder is ``$SAINT_EXPORT_TRITON_HOME`` or ``~/.cache/saint-export/triton-2.51``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingDependencyError

WHEEL = "nvidia-pytriton==0.7.0"
SERVING_PACKAGES = ["numpy<2", "onnxruntime>=1.22"]
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class ServerInstall:
    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "server/pytriton/tritonserver/bin/tritonserver"

    @property
    def libs(self) -> Path:
        return self.root / "server/nvidia_pytriton.libs"

    @property
    def backends(self) -> Path:
        return self.root / "server/pytriton/tritonserver/backends"

    @property
    def env_bin(self) -> Path:
        return self.root / "env/bin"

    def environ(self) -> dict[str, str]:
        """The server's environment: its libraries first, the serving env's Python first on PATH."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.libs), env.get("LD_LIBRARY_PATH")]))
        env["PATH"] = os.pathsep.join([str(self.env_bin), env.get("PATH", "")])
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        return env


def home() -> Path:
    explicit = os.environ.get("SAINT_EXPORT_TRITON_HOME")
    return Path(explicit) if explicit else Path.home() / ".cache/saint-export/triton-2.51"


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MissingDependencyError(f"{what} failed (needs PyPI once; set up under {home()}): {last[0]}")


def _unpack_server(dest: Path) -> None:
    """Download the wheel and keep tritonserver, its libraries and the python backend with this
    Python's stub in backends/python/."""
    staging = Path(tempfile.mkdtemp(prefix=".server.", dir=dest.parent))
    try:
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(staging)],
             f"downloading {WHEEL}")
        wheel = next(staging.glob("nvidia_pytriton-*.whl"))
        keep = ("pytriton/tritonserver/", "nvidia_pytriton.libs/")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(staging, [n for n in z.namelist() if n.startswith(keep)])
        wheel.unlink()
        stub = staging / f"pytriton/tritonserver/python_backend_stubs/{PY}/triton_python_backend_stub"
        if not stub.is_file():
            raise MissingDependencyError(f"{WHEEL} has no python backend stub for Python {PY}")
        shutil.copy2(stub, staging / "pytriton/tritonserver/backends/python/")
        for exe in (staging / "pytriton/tritonserver/bin/tritonserver", staging / "pytriton/tritonserver/backends/python/triton_python_backend_stub"):
            exe.chmod(0o755)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _make_env(dest: Path) -> None:
    staging = dest.with_name(".env.part")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _run([sys.executable, "-m", "venv", str(staging)], "creating the serving environment")
        _run([str(staging / "bin/python"), "-m", "pip", "install", "-q", *SERVING_PACKAGES],
             f"installing {' '.join(SERVING_PACKAGES)} into the serving environment")
        # venv scripts name their folder: a renamed venv keeps working for `python` itself (what the stub runs)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def server_install(progress=lambda s: None) -> ServerInstall:
    """The server and serving environment, set up on first use (about 60 MB from PyPI)."""
    install = ServerInstall(home())
    try:
        install.root.mkdir(parents=True, exist_ok=True)
        if not install.binary.is_file():
            progress(f"setting up tritonserver from {WHEEL} under {install.root} (once)")
            shutil.rmtree(install.root / "server", ignore_errors=True)
            _unpack_server(install.root / "server")
        if not (install.env_bin / "python").exists():
            progress(f"creating the serving environment ({', '.join(SERVING_PACKAGES)}) under {install.root} (once)")
            _make_env(install.root / "env")
    except OSError as exc:
        raise MissingDependencyError(f"cannot set up the Triton server under {install.root}: {exc}") from None
    return install
