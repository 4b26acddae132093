"""A bounded load generator against a running Triton server (tritonclient gRPC, one client per
thread; perf_analyzer is not installable from PyPI): for each concurrency, each model in turn
(dense and SAINT interleaved), a fixed number of one-image requests; every answer is compared with
onnxruntime run directly on that image alone (logits within ``tol``). Reports sent, answered,
failed and wrong counts, p50/p99 latency and throughput."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError
from ..inputs import preprocess, synthetic_images
from ..io import write_json
from ..models.config import ModelConfig

try:  # optional: the [serve] extra (onnxruntime, tritonclient)
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient
except ImportError:
    ort = grpcclient = None

CONCURRENCY = (1, 4, 16)


def redundant_images(n: int, size: int) -> np.ndarray:
    """Generated images with flat regions and repeated tiles (SAINT has something to prune)."""
    cfg = ModelConfig(alias="x", name="x", input_size=size, mean=(0.5,) * 3, std=(0.5,) * 3)
    return preprocess(synthetic_images(n, size), cfg).numpy().astype(np.float32)


def alone(onnx_path: Path, images: np.ndarray) -> list[np.ndarray]:
    """onnxruntime's logits for each image run alone: the answers a server must give."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(["logits"], {name: images[i:i + 1]})[0] for i in range(len(images))]


def infer_one(client, model: str, image: np.ndarray) -> np.ndarray:
    tensor = grpcclient.InferInput("pixels", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image)
    return client.infer(model, [tensor]).as_numpy("logits")


def run_load(url: str, model: str, images: np.ndarray, expected: list[np.ndarray], *, concurrency: int,
             requests: int, tol: float = 1e-5) -> dict:
    """``requests`` one-image requests from ``concurrency`` threads; counts and latencies."""
    counts = {"sent": 0, "answered": 0, "failed": 0, "wrong": 0}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    tickets = iter(range(requests))

    def worker() -> None:
        client = grpcclient.InferenceServerClient(url)
        while True:
            with lock:
                i = next(tickets, None)
                if i is None:
                    return
                counts["sent"] += 1
            k = i % len(images)
            start = time.perf_counter()
            try:
                got = infer_one(client, model, images[k:k + 1])
            except Exception as exc:  # a failed request is counted and named, the load goes on
                with lock:
                    counts["failed"] += 1
                    errors.append(str(exc).splitlines()[0][:200])
                continue
            ms = (time.perf_counter() - start) * 1e3
            with lock:
                counts["answered"] += 1
                latencies.append(ms)
                counts["wrong"] += int(got.shape != expected[k].shape or not np.allclose(got, expected[k], rtol=0, atol=tol))

    begin = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - begin
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"model": model, "concurrency": concurrency, **counts, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "throughput_rps": counts["answered"] / seconds,
            "errors": sorted(set(errors))[:5]}


def bench(url: str, models: dict[str, Path], requests: int = 64, concurrency=CONCURRENCY, size: int = 224) -> list[dict]:
    """Every model at every concurrency, the models interleaved within each concurrency level."""
    if ort is None or grpcclient is None:
        raise MissingDependencyError("--bench needs onnxruntime and tritonclient: pip install 'saint-export[serve]'")
    images = redundant_images(8, size)
    expected = {name: alone(path, images) for name, path in models.items()}
    rows = []
    for c in concurrency:
        for name in models:
            rows.append(run_load(url, name, images, expected[name], concurrency=c, requests=requests))
    return rows


def table(rows: list[dict]) -> str:
    head = "| model | concurrency | sent | answered | failed | wrong | p50 ms | p99 ms | req/s |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['concurrency']} | {r['sent']} | {r['answered']} | {r['failed']} | {r['wrong']} "
                     f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['throughput_rps']:.1f} |")
    return "\n".join(lines)


def write_report(path: Path, rows: list[dict], machine: str, force: bool = False) -> Path:
    """Atomically; an earlier report of saint-export's is replaced, anything else needs ``force``."""
    return write_json(path, {"what": "serve_bench", "machine": machine, "rows": rows}, force)
