"""Plugin fields, creators, plugins and the registry (the stand-in libnvinfer's)."""

from __future__ import annotations

import ctypes

import numpy as np

from . import _native, _program
from ._enums import PluginFieldType


def _capsule(ptr: int):
    new = ctypes.pythonapi.PyCapsule_New
    new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return new(ptr, None, None)


def _capsule_pointer(capsule) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return get(capsule, None)


class PluginField:
    __slots__ = ("_name", "_data", "_type")

    def __init__(self, name: str = "", data=None, type=PluginFieldType.UNKNOWN) -> None:  # noqa: A002
        self._name, self._type = str(name), type
        self._data = None if data is None else np.ascontiguousarray(np.asarray(memoryview(data)))

    @property
    def name(self) -> str:
        return self._name

    @property
    def data(self):
        return self._data

    @property
    def type(self):
        return self._type

    @property
    def size(self) -> int:
        return 0 if self._data is None else int(self._data.size)


class PluginFieldCollection(list):
    pass


class PluginFieldCollection_:  # noqa: N801 (the bindings' name)
    __slots__ = ("_fields",)

    def __init__(self, fields) -> None:
        self._fields = list(fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, i):
        return self._fields[i]


class IPluginV3:
    __slots__ = ("_handle", "__weakref__")

    def __new__(cls, *args, **kwargs):
        raise TypeError("tensorrt.IPluginV3 cannot be constructed here: plugins come from a creator")

    @classmethod
    def _wrap(cls, handle: int):
        obj = object.__new__(cls)
        obj._handle = handle
        return obj


class IPluginCreatorV3One:
    __slots__ = ("_handle", "_info")

    def __new__(cls, *args, **kwargs):
        raise TypeError("tensorrt.IPluginCreatorV3One cannot be constructed here: creators come from the registry")

    @classmethod
    def _wrap(cls, handle: int):
        obj = object.__new__(cls)
        obj._handle, obj._info = handle, _native.answer(_native.lib().emu_creator_info(handle))
        return obj

    @property
    def name(self) -> str:
        return self._info["name"]

    @property
    def plugin_version(self) -> str:
        return self._info["version"]

    @property
    def plugin_namespace(self) -> str:
        return self._info["namespace"]

    @property
    def field_names(self):
        return PluginFieldCollection_([PluginField(n, None, PluginFieldType(t)) for n, t, _ in self._info["fields"]])

    def create_plugin(self, name: str, field_collection, phase):
        fields = [(f.name, int(f.type), f.size, f.data) for f in field_collection]
        handle = _program.create_plugin(self._handle, name, fields, int(phase))
        return IPluginV3._wrap(handle) if handle else None


class IPluginRegistry:
    __slots__ = ("_libraries",)

    def __new__(cls, *args, **kwargs):
        raise TypeError("use tensorrt.get_plugin_registry()")

    def load_library(self, plugin_path: str):
        handle = _native.lib().emu_load_library(str(plugin_path).encode())
        return _capsule(handle) if handle else None

    def deregister_library(self, handle) -> None:
        _native.lib().emu_deregister_library(_capsule_pointer(handle))

    def get_creator(self, type: str, version: str, plugin_namespace: str = ""):  # noqa: A002
        handle = _native.lib().emu_get_creator(type.encode(), version.encode(), plugin_namespace.encode())
        return IPluginCreatorV3One._wrap(handle) if handle else None

    @property
    def all_creators(self) -> list:
        lib = _native.lib()
        return [IPluginCreatorV3One._wrap(lib.emu_creator_at(i)) for i in range(lib.emu_creator_count())]

    def deregister_creator(self, creator) -> bool:
        return bool(_native.lib().emu_deregister_creator(creator._handle))


_REGISTRY = object.__new__(IPluginRegistry)


def get_plugin_registry():
    return _REGISTRY


def init_libnvinfer_plugins(logger, namespace: str) -> bool:
    """TensorRT's own plugins: none are emulated; the registry stays as it is."""
    return True
