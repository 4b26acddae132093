#!/usr/bin/env bash
# Fetch public TensorRT 10.14 headers (Apache-2.0) for compile checks, from the PyPI package
# kernel-lens==2.0.1, into .deps/ (ignored by git). Prints the include directory.
# These headers are for compiling only: building engines needs a real TensorRT install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/kernel-lens"
inc="$dest/kernel_lens/include/tensorrt"
if [ ! -f "$inc/NvInferRuntime.h" ]; then
  mkdir -p "$dest"
  python3 -m pip download -q --no-deps kernel-lens==2.0.1 -d "$dest" >&2
  python3 - "$dest" <<'PY'
import sys, zipfile, glob
dest = sys.argv[1]
wheel = glob.glob(f"{dest}/kernel_lens-2.0.1-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith("kernel_lens/include/tensorrt/")])
PY
fi
echo "$inc"
