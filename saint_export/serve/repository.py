"""Stage ``python_repository_from_onnx``: a Triton model repository that this machine's bundled
tritonserver can run (python backend; ``1/model.py`` runs the portable ONNX with onnxruntime):
for CPU serving and for testing. Production uses the onnxruntime or TensorRT backend
(``saint_export.tensorrt.triton``)."""

from __future__ import annotations

from pathlib import Path

from ..tensorrt.triton import triton_repository_from_onnx

MODEL_PY = Path(__file__).with_name("triton_model.py")


def python_repository_from_onnx(onnx_path: Path, repo: Path, name: str | None = None, max_batch: int = 8,
                                instances: int = 1, force: bool = False) -> Path:
    """Write ``repo/NAME/{config.pbtxt, 1/model.py, 1/model.onnx}``; returns the model folder.
    Dynamic batching is on only for batch-invariant schedules (``batch_invariant``)."""
    return triton_repository_from_onnx(onnx_path, repo, name, max_batch, instances, force, platform="python",
                                       extra_files={"1/model.py": MODEL_PY})
