"""The logger, Dims and IHostMemory."""

from __future__ import annotations

from . import _native
from ._enums import DataType
from ._enums import enum as _enum


_Severity = _enum(
    "Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})


class ILogger:
    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (_Severity.INTERNAL_ERROR, _Severity.ERROR, _Severity.WARNING,
                                                     _Severity.INFO, _Severity.VERBOSE)

    def __init__(self) -> None:
        pass

    def log(self, severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    def __init__(self, min_severity=_Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            print(f"[TRT emulated] {msg}")


def _say(logger, severity, msg: str) -> None:
    if logger is not None:
        logger.log(severity, msg)


def _drain_native_log(logger, start: int) -> None:
    """Plugin and registry messages since ``start`` go to the API's logger, as TensorRT forwards them."""
    for msg in _native.log_messages()[start:]:
        _say(logger, ILogger.WARNING, msg)


class Dims:
    MAX_DIMS = 8
    __slots__ = ("_d",)

    def __init__(self, shape=()) -> None:
        self._d = [int(x) for x in shape]

    def __len__(self) -> int:
        return len(self._d)

    def __getitem__(self, i):
        return self._d[i]

    def __setitem__(self, i, v) -> None:
        self._d[i] = int(v)

    def __eq__(self, other) -> bool:
        try:
            return list(self._d) == [int(x) for x in other]
        except TypeError:
            return False

    def __repr__(self) -> str:
        return "(" + ", ".join(str(d) for d in self._d) + ("," if len(self._d) == 1 else "") + ")"

    __str__ = __repr__


class IHostMemory(bytes):
    """Only ``dtype``, ``nbytes`` and the buffer protocol, as in the bindings (no ``serialize``)."""

    __slots__ = ()
    _PUBLIC = frozenset({"dtype", "nbytes"})

    def __getattribute__(self, name):
        if not name.startswith("_") and name not in IHostMemory._PUBLIC:
            raise AttributeError(f"'tensorrt.tensorrt.IHostMemory' object has no attribute '{name}'")
        return bytes.__getattribute__(self, name)

    @property
    def dtype(self):
        return DataType.UINT8

    @property
    def nbytes(self) -> int:
        return len(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass
