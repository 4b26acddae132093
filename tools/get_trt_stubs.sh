#!/usr/bin/env bash
# Fetch tensorrt-stubs==10.13.0.35.1 (PyPI, MIT): type stubs generated from the real TensorRT 10.13
# Python bindings, the contract the tests' emulated TensorRT is held to. Unpacked into .deps/ (ignored
# by git), never installed: its `tensorrt/` folder would make `import tensorrt` succeed as an empty
# namespace package. Prints the path of tensorrt.pyi.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/tensorrt-stubs"
pyi="$dest/tensorrt_bindings/tensorrt.pyi"
if [ ! -f "$pyi" ]; then
  mkdir -p "$dest"
  python3 -m pip download -q --no-deps tensorrt-stubs==10.13.0.35.1 -d "$dest" >&2
  python3 - "$dest" <<'PY'
import sys, zipfile, glob
dest = sys.argv[1]
wheel = glob.glob(f"{dest}/tensorrt_stubs-10.13.0.35.1-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("tensorrt_bindings/")])
PY
fi
echo "$pyi"
