"""Stage ``python_repository_from_onnx``: a Triton model repository that this machine's bundled
tritonserver can run (python backend; ``1/model.py`` runs the portable ONNX with onnxruntime):
for CPU serving and for testing. Production uses the onnxruntime or TensorRT backend
(``saint_export.tensorrt.triton``)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..export.pipeline import data_path
from ..onnx_file import graph_io, read_proto
from ..models.record import ModelRecord
from ..tensorrt.triton import config_text, validate_config, write_repository
from ..runtimes.onnxruntime import require_portable

MODEL_PY = Path(__file__).with_name("triton_model.py")


def python_repository_from_onnx(onnx_path: Path, repo: Path, name: str | None = None, max_batch: int = 8,
                                instances: int = 1, force: bool = False) -> Path:
    """Write ``repo/NAME/{config.pbtxt, 1/model.py, 1/model.onnx}``; returns the model folder.
    Dynamic batching is on only for batch-invariant schedules (``batch_invariant``)."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"ONNX model {onnx_path} does not exist")
    if max_batch < 1:
        raise InputError(f"--max-batch must be >= 1; got {max_batch}")
    proto = read_proto(onnx_path)
    require_portable(proto, onnx_path)
    record = ModelRecord.from_onnx(onnx_path)
    name = name or re.sub(r"[^A-Za-z0-9_-]", "_", record.alias or onnx_path.stem)
    fields = {"io": graph_io(proto), "model": record.alias, "precision": record.precision,
              "saint_export_version": record.version, "batch_invariant": record.batch_invariant}
    text = config_text(name, fields, max_batch, instances, platform="python")
    validate_config(text)
    files = {"1/model.py": MODEL_PY, "1/model.onnx": onnx_path}
    if data_path(onnx_path).is_file():
        files[f"1/{data_path(onnx_path).name}"] = data_path(onnx_path)
    return write_repository(Path(repo), name, text, files, force)
