#!/usr/bin/env bash
# Fetch tensorrt-stubs==10.13.0.35.1 (PyPI, MIT): type stubs generated from the real TensorRT 10.13
# Python bindings, the contract the tests' emulated TensorRT is held to. Unpacked into .deps/ (ignored
# by git), never installed: its `tensorrt/` folder would make `import tensorrt` succeed as an empty
# namespace package. Prints the path of tensorrt.pyi.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/unpack_wheel.sh" tensorrt-stubs==10.13.0.35.1 tensorrt_bindings/ "$root/.deps/tensorrt-stubs"
echo "$root/.deps/tensorrt-stubs/tensorrt_bindings/tensorrt.pyi"
