#!/usr/bin/env bash
# Fetch public TensorRT 10.14 headers (Apache-2.0) for compile checks, from the PyPI package
# kernel-lens==2.0.1, into .deps/ (ignored by git). Prints the include directory.
# These headers are for compiling only: building engines needs a real TensorRT install.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/unpack_wheel.sh" kernel-lens==2.0.1 kernel_lens/include/tensorrt/ "$root/.deps/kernel-lens"
echo "$root/.deps/kernel-lens/kernel_lens/include/tensorrt"
