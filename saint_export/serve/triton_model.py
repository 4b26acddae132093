"""Triton python-backend model (copied into a repository as ``1/model.py`` by ``saint-export triton
--backend python``): runs the portable SAINT ONNX beside it with onnxruntime. It runs inside
tritonserver's python backend stub, in the serving environment (numpy<2, onnxruntime), never in
the toolkit: it imports nothing from saint_export.

Every request Triton's dynamic batcher hands over in one ``execute`` is checked on its own (input
present, float32, C×H×W as the model's, finite values); the good ones run as ONE onnxruntime batch
and each gets its own rows back (logits and every kept_index output); a bad one gets a Triton error
response naming the problem, and does not touch the others."""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("SAINT_SERVE_THREADS", "0"))
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.input = config["input"][0]["name"]
        self.dims = [int(d) for d in config["input"][0]["dims"]]
        self.max_batch = int(config.get("max_batch_size", 0))
        self.outputs = [o["name"] for o in config["output"]]

    def _pixels(self, request):
        """The request's pixels as float32 [b, C, H, W], or the reason they cannot be run."""
        tensor = pb_utils.get_input_tensor_by_name(request, self.input)
        if tensor is None:
            return None, f"input {self.input!r} is missing"
        x = tensor.as_numpy()
        if x.dtype != np.float32:
            return None, f"input {self.input!r} must be FP32; got {x.dtype}"
        if x.ndim != len(self.dims) + 1 or list(x.shape[1:]) != self.dims or x.shape[0] < 1:
            return None, f"input {self.input!r} must be [batch, {', '.join(map(str, self.dims))}]; got {list(x.shape)}"
        if self.max_batch and x.shape[0] > self.max_batch:
            return None, f"batch {x.shape[0]} is over max_batch_size {self.max_batch}"
        if not np.isfinite(x).all():
            return None, f"input {self.input!r} has NaN or Inf values"
        return x, None

    def execute(self, requests):
        checked = [self._pixels(r) for r in requests]
        good = [x for x, err in checked if err is None]
        try:
            results = self.session.run(self.outputs, {self.input: np.concatenate(good)}) if good else []
        except Exception as exc:  # one line back to every client; the model stays loaded
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"onnxruntime: {exc}")) for _ in requests]
        responses, row = [], 0
        for x, err in checked:
            if err is not None:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(err)))
                continue
            rows = slice(row, row + x.shape[0])
            row += x.shape[0]
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(value[rows])) for name, value in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
