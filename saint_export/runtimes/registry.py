"""The runtimes, by name: one entry per module. ``validate``, ``check`` and ``bench`` look a
runtime up here; adding one is a module with a ``RUNTIME`` and a line below."""

from __future__ import annotations

from ..errors import ConfigError
from . import onnxruntime, openvino, tensorrt
from .base import Runtime

RUNTIMES: dict[str, Runtime] = {r.name: r for r in (onnxruntime.RUNTIME, tensorrt.RUNTIME, openvino.RUNTIME)}


def names(suffix: str | None = None) -> list[str]:
    """Runtime names (those running ``suffix`` artifacts only, when given)."""
    return [r.name for r in RUNTIMES.values() if suffix is None or r.suffix == suffix]


def short_names() -> list[str]:
    return [r.short for r in RUNTIMES.values()]


def get(name: str, device: str | None = None) -> Runtime:
    """The runtime called ``name`` (or its short name), checked for ``device``; ConfigError otherwise."""
    found = RUNTIMES.get(name) or next((r for r in RUNTIMES.values() if r.short == name), None)
    if found is None:
        raise ConfigError(f"unknown backend {name!r}: one of {', '.join(names())}")
    if device is not None and device not in found.devices:
        raise ConfigError(f"--backend {found.name} runs on {' or '.join(found.devices)}, not --device {device}")
    return found
