"""``Runtime``: what a comparison or a benchmark needs to know about one inference runtime. Every
runtime hands out Polygraphy runners (one interface: ``activate``, ``infer(feed)``, ``deactivate``),
so ``validate``, ``check`` and ``bench`` never branch on which one it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol


class Artifacts(Protocol):
    """What ``bench`` exports once per variant ("dense" / "saint") into ``folder`` and shares between runtimes."""

    folder: Path

    def portable(self, variant: str) -> Path: ...

    def lowered(self, variant: str) -> Path: ...


def activate_runner(runner, artifact: Path):
    """``runner.activate()`` (a runtime may refine how its load failures read)."""
    runner.activate()
    return runner


@dataclass(frozen=True)
class Runtime:
    name: str  # --backend value and report label
    short: str  # bench's row label; also accepted as --backend
    suffix: str  # the artifact it runs: ".onnx" (the portable model) or ".plan"
    runner: Callable[..., Any]  # (artifact, device, extra_outputs, name) -> a Polygraphy runner, not yet active
    describe: Callable[[str], str]  # device -> what runs, for report heads
    require: Callable[[], None] = lambda: None  # one line when the runtime is not installed, before any work
    artifact: Callable[[Artifacts, str, int], Path] | None = None  # bench: (artifacts, variant, max batch) -> artifact
    activate: Callable[[Any, Path], Any] = activate_runner
    devices: tuple[str, ...] = ("cpu", "cuda")
