"""The deployment job: a Triton Inference Server model repository for an engine or a portable ONNX."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..serve.repository import python_repository_from_onnx
from ..tensorrt.sidecar import read_sidecar
from ..tensorrt.triton import (
    backend_config,
    triton_repository_from_engine,
    triton_repository_from_onnx,
)
from .options import TritonOptions
from .reports import FilesReport


def triton_repository(model: str | Path, options: TritonOptions) -> FilesReport:
    """``repo/NAME/``: config.pbtxt (validated with Triton's ModelConfig) and the model; for an engine,
    the plugin library beside it unless the plan carries it. The report's text ends with the
    ``tritonserver`` command line that serves it."""
    model, repo = Path(model), Path(options.repo)
    if options.backend == "python":
        if not model.name.endswith(".onnx"):
            raise ConfigError("--backend python takes a portable .onnx (an engine runs on the TensorRT backend)")
        target = python_repository_from_onnx(model, repo, options.name, options.max_batch or 8, options.instances, options.force)
        return FilesReport(f"Triton model: {target} (python backend running onnxruntime; config.pbtxt validated)\n"
                           f"run: saint-export serve {repo.resolve()}", {"model": str(target)})
    if model.name.endswith(".onnx"):
        if options.plugin:
            raise ConfigError("--plugin: the portable ONNX carries SaintTokenDrop's function body and needs no plugin")
        target = triton_repository_from_onnx(model, repo, options.name, options.max_batch or 8, options.instances, options.force)
        return FilesReport(f"Triton model: {target} (onnxruntime backend; config.pbtxt validated with Triton's ModelConfig)\n"
                           f"run: tritonserver --model-repository={repo.resolve()}", {"model": str(target)})
    target = triton_repository_from_engine(model, repo, name=options.name, plugin_library=Path(options.plugin) if options.plugin else None,
                                           max_batch=options.max_batch, instances=options.instances, force=options.force)
    flags = backend_config(read_sidecar(model), str(Path(target).resolve()))
    return FilesReport(f"Triton model: {target} (config.pbtxt validated with Triton's ModelConfig)\n"
                       + f"run: tritonserver --model-repository={repo.resolve()} {' '.join(flags)}".rstrip(), {"model": str(target)})
