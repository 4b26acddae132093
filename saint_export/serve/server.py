"""One tritonserver process on loopback: started in its own process group (so stopping it also ends
the python backend's stub processes), ready when ``/v2/health/ready`` answers 200, stopped with
SIGTERM to the group (SIGKILL after a grace period)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, MissingDependencyError, StageError
from .install import ServerInstall

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    def endpoints(self) -> list[str]:
        return [f"HTTP     http://{HOST}:{self.http}", f"gRPC     {HOST}:{self.grpc}",
                f"metrics  http://{HOST}:{self.metrics}/metrics"]


def free_ports() -> Ports:
    """Three ports the kernel reports free now (tests)."""
    socks = [socket.socket() for _ in range(3)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return Ports(*(s.getsockname()[1] for s in socks))
    finally:
        for s in socks:
            s.close()


def check_ports_free(ports: Ports) -> None:
    for what, port in (("--http-port", ports.http), ("--grpc-port", ports.grpc), ("--metrics-port", ports.metrics)):
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                raise InputError(f"{what} {port}: {HOST}:{port} is in use (another server?); pick another port")


@dataclass
class TritonServer:
    install: ServerInstall
    repo: Path
    ports: Ports = field(default_factory=Ports)
    poll: bool = False
    log: Path | None = None
    process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [str(self.install.binary), f"--model-repository={Path(self.repo).resolve()}",
               f"--backend-directory={self.install.backends}", f"--http-address={HOST}", f"--grpc-address={HOST}",
               f"--metrics-address={HOST}", f"--http-port={self.ports.http}", f"--grpc-port={self.ports.grpc}",
               f"--metrics-port={self.ports.metrics}", "--exit-on-error=false", "--strict-readiness=false"]
        if self.poll:
            cmd += ["--model-control-mode=poll", "--repository-poll-secs=1"]
        return cmd

    def start(self, timeout: float = 120.0) -> "TritonServer":
        if not Path(self.repo).is_dir():
            raise InputError(f"model repository {self.repo} is not a folder")
        check_ports_free(self.ports)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(self.command(), env=self.install.environ(), stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise MissingDependencyError(f"cannot start {self.install.binary}: {exc.strerror or exc}") from None
        finally:
            if self.log:
                out.close()
        self.wait_ready(timeout)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.ports.http}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StageError("serve", f"tritonserver exited with code {self.process.returncode} before it was ready"
                                          + self._last_log_line())
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        raise StageError("serve", f"tritonserver was not ready within {timeout:.0f} s")

    def _last_log_line(self) -> str:
        try:
            lines = [x for x in Path(self.log).read_text(errors="replace").splitlines() if x.strip()] if self.log else []
        except OSError:
            lines = []
        return f": {lines[-1].strip()[:300]}" if lines else ""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the process group (server and stubs), SIGKILL after ``grace`` seconds."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        _reap_group(self.process.pid)
        self.process = None

    def __enter__(self) -> "TritonServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def _reap_group(pgid: int) -> None:
    """Stub processes left in the group after the server exited: SIGKILL them."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
