"""ctypes bridge to the emulator's native half, the stand-in ``libnvinfer.so.<major>``
(plugins/tests/trtEmulator.cpp), loaded RTLD_LOCAL as the tensorrt wheel loads libnvinfer, so a plugin
library that looks for the runtime by soname finds it and one that relies on global symbols does not."""

from __future__ import annotations

import ctypes
import json
import os
from pathlib import Path

from . import _profile

_LIB: ctypes.CDLL | None = None
MAX_DIMS = 8


def library_dir() -> Path:
    root = os.environ.get("SAINT_TRT_EMULATOR_LIBDIR")
    if not root:
        raise ImportError("the emulated TensorRT needs SAINT_TRT_EMULATOR_LIBDIR (the emulated/ folder of a "
                          "cmake -DSAINT_CPU_KERNELS=ON -DTensorRT_INCLUDE_DIR=... build of plugins/)")
    return Path(root)


def lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        path = library_dir() / str(_profile.MAJOR) / f"libnvinfer.so.{_profile.MAJOR}"
        if not path.is_file():
            raise ImportError(f"emulated TensorRT: {path} not found")
        handle = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        c_char_p, c_void_p, i32, i64 = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64
        sig = {
            "emu_tensorrt_major": (i32, []),
            "emu_log_count": (i32, []), "emu_log_message": (c_char_p, [i32]),
            "emu_registry_reentrant_calls": (i32, []), "emu_registry_duplicates": (i32, []),
            "emu_load_library": (c_void_p, [c_char_p]), "emu_deregister_library": (None, [c_void_p]),
            "emu_creator_count": (i32, []), "emu_creator_at": (c_void_p, [i32]),
            "emu_get_creator": (c_void_p, [c_char_p, c_char_p, c_char_p]),
            "emu_deregister_creator": (i32, [c_void_p]),
            "emu_creator_info": (c_char_p, [c_void_p]),
            "emu_create_plugin": (c_void_p, [c_void_p, c_char_p, i32, ctypes.POINTER(c_char_p), ctypes.POINTER(c_void_p),
                                             ctypes.POINTER(i32), ctypes.POINTER(i32), i32]),
            "emu_destroy_plugin": (None, [c_void_p]),
            "emu_plugin_info": (c_char_p, [c_void_p]), "emu_plugin_fields": (c_char_p, [c_void_p]),
            "emu_plugin_build": (c_char_p, [c_void_p, i32, ctypes.POINTER(i32), ctypes.POINTER(i32), ctypes.POINTER(i64), i32,
                                            ctypes.POINTER(c_char_p), ctypes.POINTER(i64), ctypes.POINTER(i64),
                                            ctypes.POINTER(i64), ctypes.POINTER(i32)]),
            "emu_attach": (c_void_p, [c_void_p]),
            "emu_plugin_enqueue": (c_char_p, [c_void_p, i32, i32, ctypes.POINTER(i32), ctypes.POINTER(i32), ctypes.POINTER(i64),
                                              ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p), c_void_p, ctypes.c_size_t]),
            "emu_workspace_guard_bytes": (ctypes.c_size_t, []),
        }
        for name, (res, args) in sig.items():
            fn = getattr(handle, name)
            fn.restype, fn.argtypes = res, args
        _LIB = handle
    return _LIB


def answer(raw: bytes) -> dict:
    out = json.loads(raw.decode())
    if not out.get("ok"):
        raise RuntimeError(out.get("error", "emulated TensorRT: unknown error"))
    return out


def log_messages() -> list[str]:
    return [lib().emu_log_message(i).decode() for i in range(lib().emu_log_count())]


def array(ctype, values):
    values = list(values)
    return (ctype * max(len(values), 1))(*values)
