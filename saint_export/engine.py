"""TensorRT engine building. This module only checks for TensorRT for now; without it the
engine step stops with one clear line (exit code 5) after the ONNX files are written."""

from __future__ import annotations

from .errors import MissingDependencyError


def require_tensorrt():
    """Return the ``tensorrt`` module, or raise MissingDependencyError saying what is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed: the ONNX files are written; to build an engine install TensorRT "
            "(pip install 'saint-export[tensorrt]' on a machine with an NVIDIA GPU) and build plugins/ with CMake"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise MissingDependencyError("no CUDA GPU is visible: TensorRT engines are built on the GPU they will run on")
    return tensorrt
