#!/usr/bin/env python3
"""Rewrite a .cu file into host C++ for the CPU CUDA runtime (cuda_cpu.h).

    cu2cpp.py kernels.cu kernels_cpu.cpp

Three rewrites, nothing else changes (line numbers are kept, and a #line directive names the .cu,
so compiler diagnostics and sanitizer reports point at the original lines):

* ``kernel<<<grid, block[, shared[, stream]]>>>(args)`` ->
  ``::cudacpu::launch(::cudacpu::config(grid, block, ...), kernel, args)``
* ``__shared__ T name[dims];``        -> ``CUDACPU_SHARED(T, name, [dims]);``  (one copy per block)
* ``extern __shared__ T name[];``     -> ``CUDACPU_EXTERN_SHARED(T, name);``    (the launch's dynamic bytes)

Any other use of ``__shared__`` (initialisers, several declarators) is refused with its line number.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:\s<>,]*?)\s+(\w+)\s*\[\s*\]\s*;")
SHARED = re.compile(r"__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:\s<>,]*?)\s+(\w+)\s*((?:\[[^\]\[;]*\])*)\s*;")


def code_only(src: str) -> str:
    """``src`` with comments, string and character literals blanked (same length, newlines kept)."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif src[i] in "\"'":
            j = i + 1
            while j < n and src[j] != src[i]:
                j += 2 if src[j] == "\\" else 1
            j += 1
        else:
            i += 1
            continue
        for k in range(i, min(j, n)):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def matching(code: str, start: int, open_: str, close: str) -> int:
    """Index just past the bracket that closes the one at ``start``."""
    depth = 0
    for i in range(start, len(code)):
        if code[i] == open_:
            depth += 1
        elif code[i] == close:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced {open_}{close} from line {line_of(code, start)}")


def kernel_start(code: str, end: int) -> int:
    """Start of the kernel expression (``ns::name<T, U>``) that ends just before ``end``."""
    i = end
    while i > 0 and code[i - 1].isspace():
        i -= 1
    while True:
        if i > 0 and code[i - 1] == ">":
            depth = 0
            while i > 0:
                i -= 1
                depth += {">": 1, "<": -1}.get(code[i], 0)
                if depth == 0:
                    break
        j = i
        while j > 0 and (code[j - 1].isalnum() or code[j - 1] == "_"):
            j -= 1
        if j == i:
            raise ValueError(f"no kernel name before <<< on line {line_of(code, end)}")
        i = j
        if code[max(0, i - 2):i] != "::":
            return i
        i -= 2


def split_top_level(text: str) -> list[str]:
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def rewrite_launches(src: str) -> str:
    code = code_only(src)
    edits = []  # (start, end, replacement)
    for m in re.finditer(r"<<<", code):
        close = code.find(">>>", m.end())
        if close < 0:
            raise ValueError(f"<<< without >>> on line {line_of(src, m.start())}")
        name_at = kernel_start(code, m.start())
        args_open = close + 3
        while args_open < len(code) and code[args_open].isspace():
            args_open += 1
        if code[args_open:args_open + 1] != "(":
            raise ValueError(f"no argument list after >>> on line {line_of(src, close)}")
        args_close = matching(code, args_open, "(", ")")
        cfg = src[m.end():close]
        if not 2 <= len(split_top_level(code[m.end():close])) <= 4:
            raise ValueError(f"launch on line {line_of(src, m.start())} needs 2 to 4 configuration values")
        args = src[args_open + 1:args_close - 1]
        name = src[name_at:m.start()].rstrip()
        sep = ", " if args.strip() else ""
        edits.append((name_at, args_close, f"::cudacpu::launch(::cudacpu::config({cfg}), {name}{sep}{args})"))
    for start, end, text in reversed(edits):
        src = src[:start] + text + src[end:]
    return src


def rewrite_shared(src: str) -> str:
    def sub(pattern, make):
        nonlocal src
        code = code_only(src)
        for m in reversed(list(pattern.finditer(code))):
            src = src[:m.start()] + make(m) + src[m.end():]

    sub(EXTERN_SHARED, lambda m: f"CUDACPU_EXTERN_SHARED({' '.join(m.group(1).split())}, {m.group(2)});")
    sub(SHARED, lambda m: f"CUDACPU_SHARED({' '.join(m.group(1).split())}, {m.group(2)}, {m.group(3)});")
    left = [m.start() for m in re.finditer(r"\b__shared__\b", code_only(src))]
    if left:
        raise ValueError(f"unsupported __shared__ declaration on line {line_of(src, left[0])}")
    return src


def convert(src: str, origin: str) -> str:
    body = rewrite_launches(rewrite_shared(src))
    return f'#include "cuda_cpu.h"\n#line 1 "{origin}"\n{body}'


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    cu, out = Path(argv[1]).resolve(), Path(argv[2])
    try:
        text = convert(cu.read_text(), str(cu))
    except ValueError as exc:
        print(f"{cu}: {exc}", file=sys.stderr)
        return 1
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
