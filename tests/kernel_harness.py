"""Test scaffolding: a ctypes bridge to the SaintTokenDrop CUDA kernels (``libsaint_kernels_harness.so``),
so the kernels can be tested and timed against the PyTorch reference without TensorRT. The rule's
ctypes arguments come from ``opdef.ATTRIBUTES`` (the C ABI takes them in that order).

The library is looked up in ``$SAINT_KERNELS_LIB``, then ``plugins/build/``; :func:`build_harness`
builds it with CMake and nvcc. :func:`build_cpu_harness` builds the same C ABI with the kernels running
on the CPU (plugins/cuda_cpu), for CPU tensors and no GPU.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from saint_export.errors import MissingDependencyError, StageError
from saint_export.export.opdef import ATTRIBUTES
from saint_export.reference.schedule import LayerRule

PLUGINS_DIR = Path(__file__).resolve().parents[1] / "plugins"
RULE_CTYPES = [ctypes.c_float if a.kind == "float" else ctypes.c_int32 for a in ATTRIBUTES]


def rule_args(rule: LayerRule, protected: int) -> list:
    """The rule's fields and P, in ``ATTRIBUTES`` order: the C ABI's parameter order."""
    values = {"threshold": rule.threshold, "k": rule.k, "gamma": rule.gamma, "protected": protected, "fixed_r": rule.fixed_r}
    return [float(values[a.name]) if a.kind == "float" else int(values[a.name]) for a in ATTRIBUTES]
LIB_NAME = "libsaint_kernels_harness.so"
DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


def build_harness(build_dir: Path, cuda_archs: str = "native", extra: tuple[str, ...] = ()) -> Path:
    """Configure and build plugins/ into ``build_dir``; returns the harness library path."""
    if shutil.which("cmake") is None or shutil.which("nvcc") is None and not Path("/usr/local/cuda/bin/nvcc").exists():
        raise MissingDependencyError("building the CUDA kernels needs cmake and nvcc")
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin"
    cmds = [["cmake", "-S", str(PLUGINS_DIR), "-B", str(build_dir), f"-DCMAKE_CUDA_ARCHITECTURES={cuda_archs}", *extra],
            ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)]]
    for cmd in cmds:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            tail = (res.stdout + res.stderr).strip().splitlines()[-15:]
            raise StageError("build", f"{' '.join(cmd[:2])} failed:\n" + "\n".join(tail))
    return Path(build_dir) / LIB_NAME


def build_cpu_harness(build_dir: Path, sanitize: bool = False, kernels_cu: Path | None = None) -> Path:
    """Build ``libsaint_kernels_cpu.so``: the harness over saintTokenDropKernels.cu (or ``kernels_cu``)
    compiled as host C++ against the CPU CUDA runtime (plugins/cuda_cpu). No nvcc or GPU: cmake, a C++
    compiler and the CUDA headers. :class:`KernelHarness` drives it with CPU tensors. ``sanitize``:
    AddressSanitizer + UBSan (the process must preload libasan)."""
    if shutil.which("cmake") is None or not (shutil.which("c++") or shutil.which("g++")):
        raise MissingDependencyError("building the CPU kernels needs cmake and a C++ compiler")
    configure = ["cmake", "-S", str(PLUGINS_DIR), "-B", str(build_dir), "-DSAINT_CPU_KERNELS=ON",
                 f"-DCUDA_CPU_SANITIZE={'ON' if sanitize else 'OFF'}", f"-DPython3_EXECUTABLE={sys.executable}"]
    if kernels_cu is not None:
        configure.append(f"-DSAINT_KERNELS_CU={Path(kernels_cu).resolve()}")
    for cmd in (configure, ["cmake", "--build", str(build_dir), "-j", str(os.cpu_count() or 2)]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            out = (res.stdout + res.stderr).strip()
            if "CUDA headers not found" in out:
                raise MissingDependencyError("building the CPU kernels needs the CUDA headers (cuda_fp16.h)")
            raise StageError("build", f"{' '.join(cmd[:2])} failed:\n" + "\n".join(out.splitlines()[-15:]))
    return Path(build_dir) / "libsaint_kernels_cpu.so"


def find_harness() -> Path | None:
    env = os.environ.get("SAINT_KERNELS_LIB")
    for candidate in ([Path(env)] if env else []) + [PLUGINS_DIR / "build" / LIB_NAME]:
        if candidate.is_file():
            return candidate
    return None


class KernelHarness:
    def __init__(self, path: Path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.saint_token_drop_workspace_size.restype = ctypes.c_size_t
        self.lib.saint_token_drop_workspace_size.argtypes = [ctypes.c_int32] * 3
        self.lib.saint_token_drop_check.restype = ctypes.c_char_p
        self.lib.saint_token_drop_check.argtypes = [ctypes.c_int32] * 4 + RULE_CTYPES
        self.lib.saint_token_drop.restype = ctypes.c_int32
        self.lib.saint_token_drop.argtypes = [ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int32] * 4 + RULE_CTYPES + [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self.lib.saint_token_drop_masked.restype = ctypes.c_int32
        self.lib.saint_token_drop_masked.argtypes = [ctypes.c_int32] + [ctypes.c_void_p] * 3 + [ctypes.c_int32] * 4 + RULE_CTYPES + [
            ctypes.c_void_p] * 5 + [ctypes.c_size_t, ctypes.c_void_p]
        self.lib.saint_token_drop_host.restype = ctypes.c_char_p
        self.lib.saint_token_drop_host.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int32] * 4 + RULE_CTYPES + [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.saint_cuda_error_string.restype = ctypes.c_char_p
        self.lib.saint_cuda_error_string.argtypes = [ctypes.c_int32]
        self._workspace: torch.Tensor | None = None

    def _prepare(self, tokens, metric, params: list):
        """Parameters checked by the library; contiguous inputs; the workspace sized. -> (tokens, metric, bytes)"""
        b, n, c = tokens.shape
        d = metric.shape[-1]
        bad = self.lib.saint_token_drop_check(b, n, c, d, *params)
        if bad:
            raise ValueError(bad.decode())
        ws_bytes = self.lib.saint_token_drop_workspace_size(b, n, d)
        if self._workspace is None or self._workspace.numel() < ws_bytes or self._workspace.device != tokens.device:
            self._workspace = torch.empty(ws_bytes, dtype=torch.uint8, device=tokens.device)
        return tokens.contiguous(), metric.contiguous(), ws_bytes

    def token_drop_per_sample(self, tokens: torch.Tensor, metric: torch.Tensor, mask: torch.Tensor | None = None,
                              rule: LayerRule = LayerRule(), protected: int = 1):
        """The per-sample vote: tokens [B, N, C], metric [B, N, D], mask [B, N] bool or None (passed as
        int32, as the plugin takes it) -> (tokens_out [B, M, C], kept_index [B, M], mask_out [B, M] bool),
        as ``saint_drop_per_sample``."""
        (b, n, c), d = tokens.shape, metric.shape[-1]
        params = rule_args(rule, protected)
        tokens, metric, ws_bytes = self._prepare(tokens, metric, params)
        mask_int = None if mask is None else mask.to(torch.int32).contiguous()
        out = torch.empty_like(tokens)
        kept = torch.empty(b, n, dtype=torch.int64, device=tokens.device)
        mask_out = torch.empty(b, n, dtype=torch.int32, device=tokens.device)
        count = torch.empty(1, dtype=torch.int32, device=tokens.device)
        stream = torch.cuda.current_stream(tokens.device).cuda_stream if tokens.is_cuda else None
        err = self.lib.saint_token_drop_masked(
            DTYPES[tokens.dtype], tokens.data_ptr(), metric.data_ptr(), None if mask_int is None else mask_int.data_ptr(),
            b, n, c, d, *params, out.data_ptr(), kept.data_ptr(), mask_out.data_ptr(),
            count.data_ptr(), self._workspace.data_ptr(), ws_bytes, stream)
        if err != 0:
            raise RuntimeError(f"saint_token_drop_masked: {self.lib.saint_cuda_error_string(err).decode()}")
        m = int(count.item())
        return (out.view(-1)[: b * m * c].view(b, m, c), kept.view(-1)[: b * m].view(b, m),
                mask_out.view(-1)[: b * m].view(b, m).bool())

    def token_drop(self, tokens: torch.Tensor, metric: torch.Tensor, rule: LayerRule = LayerRule(), protected: int = 1,
                   out: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        """CUDA tensors tokens [B, N, C], metric [B, N, D] (same dtype) ->
        (tokens_out [B, M, C], kept_index [B, M], M), M read back from the device."""
        (b, n, c), d = tokens.shape, metric.shape[-1]
        params = rule_args(rule, protected)
        tokens, metric, ws_bytes = self._prepare(tokens, metric, params)
        if out is None:
            out = (torch.empty_like(tokens), torch.empty(b, n, dtype=torch.int64, device=tokens.device),
                   torch.empty(1, dtype=torch.int32, device=tokens.device))
        out_tokens, kept, count = out
        stream = torch.cuda.current_stream(tokens.device).cuda_stream if tokens.is_cuda else None  # CPU build
        err = self.lib.saint_token_drop(DTYPES[tokens.dtype], tokens.data_ptr(), metric.data_ptr(), b, n, c, d,
                                        *params, out_tokens.data_ptr(), kept.data_ptr(),
                                        count.data_ptr(), self._workspace.data_ptr(), ws_bytes, stream)
        if err != 0:
            raise RuntimeError(f"saint_token_drop: {self.lib.saint_cuda_error_string(err).decode()}")
        m = int(count.item())
        return out_tokens.view(-1)[: b * m * c].view(b, m, c), kept.view(-1)[: b * m].view(b, m), m

    def token_drop_host(self, tokens: torch.Tensor, metric: torch.Tensor, rule: LayerRule = LayerRule(), protected: int = 1):
        """The kernels' host twin on float32 CPU tensors -> (tokens_out [B, M, C], kept_index [B, M], M)."""
        tokens = tokens.detach().float().contiguous().cpu()
        metric = metric.detach().float().contiguous().cpu()
        b, n, c = tokens.shape
        out = torch.empty_like(tokens)
        kept = torch.empty(b, n, dtype=torch.int64)
        count = torch.empty(1, dtype=torch.int64)
        err = self.lib.saint_token_drop_host(tokens.data_ptr(), metric.data_ptr(), b, n, c, metric.shape[-1],
                                             *rule_args(rule, protected), out.data_ptr(), kept.data_ptr(), count.data_ptr())
        if err:
            raise ValueError(err.decode())
        m = int(count.item())
        return out.view(-1)[: b * m * c].view(b, m, c), kept.view(-1)[: b * m].view(b, m), m
