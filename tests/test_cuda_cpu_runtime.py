"""The CPU CUDA runtime (plugins/cuda_cpu) on small kernels, one rule each (selftest/selftest.cu):
results of barriers, shuffles and atomics, loud failures of misused warp primitives, shared-memory
overruns and launch limits; and the cu2cpp.py rewrite itself."""

import ctypes
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

CUDA_CPU = Path(__file__).resolve().parent.parent / "plugins" / "cuda_cpu"
LAUNCH_FAILURE, INVALID_CONFIGURATION, INVALID_VALUE = 719, 9, 1


@pytest.fixture(scope="module")
def selftest(tmp_path_factory):
    if shutil.which("cmake") is None or not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("needs cmake and a C++ compiler")
    build = tmp_path_factory.mktemp("cuda_cpu_selftest")
    res = subprocess.run(["cmake", "-S", str(CUDA_CPU / "selftest"), "-B", str(build)], capture_output=True, text=True)
    if "CUDA headers not found" in res.stdout + res.stderr:
        pytest.skip("needs the CUDA headers (cuda_fp16.h)")
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    lib = ctypes.CDLL(str(build / "libcuda_cpu_selftest.so"))
    lib.cuda_cpu_selftest.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.cuda_cpu_selftest_error.restype = ctypes.c_char_p

    def launch(which):
        """(cudaError_t of the launch, out, its message)"""
        out = (ctypes.c_int * 1024)()
        err = lib.cuda_cpu_selftest(which, out)
        return err, list(out), lib.cuda_cpu_selftest_error(err).decode()
    return launch


@pytest.fixture(params=["0", "7"], ids=["in-order", "seeded"])
def order(request, monkeypatch):
    monkeypatch.setenv("CUDA_CPU_SEED", request.param)


def test_barriers_shuffles_and_atomics_give_cuda_results(selftest, order):
    err, out, _ = selftest(0)
    assert err == 0 and out[0] == 3 * sum(range(256))
    err, out, _ = selftest(1)
    lanes = range(32)
    assert err == 0
    assert out[:32] == [lane + 3 if lane + 3 < 32 else lane for lane in lanes]  # down
    assert out[32:64] == [lane - 3 if lane >= 3 else lane for lane in lanes]  # up
    assert out[64:96] == [(lane & ~7) + 5 for lane in lanes]  # indexed, width 8
    assert out[96:128] == [lane ^ 9 for lane in lanes]  # xor, width 16
    assert out[128:160] == [lane - 16 if lane >= 16 else lane for lane in lanes]  # xor into an earlier group, width 8
    err, out, _ = selftest(2)  # exited threads count as arrived at __syncthreads
    assert err == 0 and out[:64] == [2] * 64
    err, out, _ = selftest(5)  # a mask naming only the lanes that shuffle
    assert err == 0 and out[:16] == [lane ^ 1 for lane in range(16)]


def test_misused_warp_primitives_fail_loudly(selftest, order):
    err, _, message = selftest(3)
    assert err == LAUNCH_FAILURE and "lane 5" in message and "has exited" in message and "block (0,0,0)" in message
    err, _, message = selftest(4)
    assert err == LAUNCH_FAILURE and "__syncthreads" in message


def test_shared_memory_overrun_and_launch_limits(selftest):
    err, _, message = selftest(6)
    assert err == LAUNCH_FAILURE and "dynamic shared memory" in message
    assert selftest(7)[0] == INVALID_CONFIGURATION  # 2048 threads per block
    assert selftest(8)[0] == INVALID_CONFIGURATION  # grid y > 65535
    assert selftest(9)[0] == INVALID_VALUE  # 64 KiB of dynamic shared memory
    assert selftest(0)[0] == 0  # errors are not sticky


@pytest.fixture(scope="module")
def cu2cpp():
    spec = importlib.util.spec_from_file_location("cu2cpp", CUDA_CPU / "cu2cpp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rewrite_keeps_lines_and_rewrites_launches_and_shared(cu2cpp):
    src = ("// k<<<1, 2>>>(x) in a comment stays\n"
           "__global__ void f() { __shared__ float tile[4][8 + 1]; extern __shared__ unsigned char dyn[]; }\n"
           "void g(int* p, cudaStream_t s) {\n"
           "  ns::kern<float, 2><<<dim3(3, 4), 64,\n      16, s>>>(p,\n      1);\n"
           "  plain<<<1, 32>>>();\n}\n")
    out = cu2cpp.convert(src, "/x/k.cu")
    assert out.startswith('#include "cuda_cpu.h"\n#line 1 "/x/k.cu"\n')
    body = out.split("\n", 2)[2]
    assert body.count("\n") == src.count("\n")
    assert "// k<<<1, 2>>>(x) in a comment stays" in body
    assert "CUDACPU_SHARED(float, tile, [4][8 + 1]);" in body
    assert "CUDACPU_EXTERN_SHARED(unsigned char, dyn);" in body
    assert "::cudacpu::launch(::cudacpu::config(dim3(3, 4), 64,\n      16, s), ns::kern<float, 2>, p,\n      1);" in body
    assert "::cudacpu::launch(::cudacpu::config(1, 32), plain);" in body


def test_rewrite_refuses_what_it_cannot_express(cu2cpp):
    with pytest.raises(ValueError, match="line 2"):
        cu2cpp.convert("void f() {\n  __shared__ int a = 0;\n}\n", "k.cu")
    with pytest.raises(ValueError, match="2 to 4"):
        cu2cpp.convert("void f() { k<<<1>>>(); }\n", "k.cu")
