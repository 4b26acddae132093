"""The SaintTokenDrop plugin libraries: where they are, and loading one into TensorRT's plugin
registry (``trt.get_plugin_registry().load_library``, through the library's getCreators) once
per process. ``LoadPluginLibraries`` is the Polygraphy-style loader that does it before the
network or engine loader it wraps (Polygraphy's own ``LoadPlugins`` is a bare ``ctypes.CDLL``).

Two libraries, one registration path each (plugins/common/pluginRegistration.cpp):
``libsaint_plugins.so`` for the registry (saint-export, trtexec --dynamicPlugins, plugins
serialized into version-compatible engines) and ``libsaint_plugins_onload.so`` for loaders that
only dlopen (``polygraphy run --plugins``, trtexec --plugins, Triton's plugins= backend config).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, StageError
from ..export.opdef import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

PLUGIN_LIB = "libsaint_plugins.so"
ONLOAD_LIB = "libsaint_plugins_onload.so"
ENV_PLUGIN_LIB = "SAINT_PLUGIN_LIB"
_LOADED: dict[str, Any] = {}  # resolved path -> the registry's handle


def plugin_library_path(explicit: str | Path | None = None) -> Path | None:
    """``explicit``, ``$SAINT_PLUGIN_LIB``, or ``plugins/build/libsaint_plugins.so``; None if none exists."""
    root = Path(__file__).resolve().parents[2]
    for candidate in (explicit, os.environ.get(ENV_PLUGIN_LIB), root / "plugins" / "build" / PLUGIN_LIB):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def require_plugin_library(explicit: str | Path | None = None) -> Path:
    lib = plugin_library_path(explicit)
    if lib is None:
        raise MissingDependencyError(f"{PLUGIN_LIB} not found: build plugins/ with CMake or set ${ENV_PLUGIN_LIB}")
    return lib


def tensorrt_major(trt) -> int:
    """The major version of the ``tensorrt`` module ``trt``."""
    return int(str(trt.__version__).split(".")[0])


def onload_library(lib: Path) -> Path | None:
    """The dlopen-only twin built beside ``lib`` (for Polygraphy's --plugins and Triton), if present."""
    twin = Path(lib).with_name(ONLOAD_LIB)
    return twin if twin.is_file() else None


def built_for_major(lib: Path) -> int | None:
    """The TensorRT major the library was built for (its ``saintPluginTensorRTMajor``), None if it does not say."""
    try:
        handle = ctypes.CDLL(str(lib), mode=os.RTLD_LOCAL)  # libsaint_plugins.so does nothing when loaded
    except OSError as exc:
        raise StageError("engine", f"cannot load the plugin library {lib}: {exc}") from None
    fn = getattr(handle, "saintPluginTensorRTMajor", None)
    if fn is None:
        return None
    fn.restype = ctypes.c_int32
    return int(fn())


def load_plugin_library(lib: str | Path) -> None:
    """Register the library's creators with TensorRT's plugin registry, once per process; refuses in one
    line a library built for another TensorRT major (the plugin and registry interfaces' ABI differs)."""
    import tensorrt as trt

    path = Path(lib).resolve()
    if str(path) in _LOADED:
        return
    if path.name == ONLOAD_LIB:
        raise MissingDependencyError(f"{path} registers itself when dlopened (for polygraphy --plugins and Triton); "
                                     f"saint-export loads {PLUGIN_LIB} through TensorRT's plugin registry: pass that one")
    major = tensorrt_major(trt)
    built = built_for_major(path)
    if built is not None and built != major:
        raise MissingDependencyError(f"{path} was built for TensorRT {built}, this is TensorRT {trt.__version__}: rebuild "
                                     f"plugins/ against the TensorRT {major} headers (-DTensorRT_INCLUDE_DIR=...)")
    registry = trt.get_plugin_registry()
    if registry.get_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None:
        _LOADED[str(path)] = None  # registered already (by the caller, or another copy): loading again would fail
        return
    handle = registry.load_library(str(path))
    if handle is None:
        raise StageError("engine", f"TensorRT's plugin registry could not load {path} (see the TensorRT log above)")
    _LOADED[str(path)] = handle


def LoadPluginLibraries(plugins: list[str], obj=None):  # noqa: N802 (Polygraphy's loader naming)
    """A Polygraphy loader: load ``plugins`` through the registry, then return ``obj`` (called if callable)."""
    from polygraphy import util
    from polygraphy.backend.base import BaseLoader

    class _Loader(BaseLoader):
        def __init__(self):
            self.plugins, self.obj = list(plugins), obj

        def call_impl(self, *args, **kwargs):
            for plugin in self.plugins:
                load_plugin_library(plugin)
            return util.invoke_if_callable(self.obj, *args, **kwargs)[0]

    return _Loader()
