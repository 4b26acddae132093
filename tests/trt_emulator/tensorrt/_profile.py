"""Which TensorRT the emulation plays: ``SAINT_TRT_EMULATOR_PROFILE`` = 10 (the default; the
surface of the real 10.13 bindings, tensorrt-stubs==10.13.0.35.1) or 11 (TensorRT 11's known
changes, from the 11.1 headers and python/src/infer/pyCore.cpp: no FP16/BF16/INT8 builder flags,
networks always strongly typed, no EXPLICIT_BATCH, libnvinfer.so.11, fewer engine/registry members).
``SAINT_TRT_EMULATOR_VERSION`` overrides the version string (a plan built by one version and loaded by
another is how version compatibility is tested)."""

from __future__ import annotations

import os

MAJOR = int(os.environ.get("SAINT_TRT_EMULATOR_PROFILE", "10"))
if MAJOR not in (10, 11):
    raise ImportError(f"SAINT_TRT_EMULATOR_PROFILE must be 10 or 11; got {MAJOR}")
VERSION = os.environ.get("SAINT_TRT_EMULATOR_VERSION") or {10: "10.13.0.35", 11: "11.1.0.106"}[MAJOR]
V11 = MAJOR >= 11
