"""Against the real Triton Inference Server (tritonserver 2.51 from the PyPI wheel nvidia-pytriton,
python backend running onnxruntime), on loopback: parity over gRPC and HTTP, batch invariance under
Triton's dynamic batcher, faults, a version placed while clients run, the server killed mid-load and
`saint-export serve` restarted, and the production repositories' configs loaded by the same server.
Every test stops the servers it starts. Skips with the reason when the server cannot be set up."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import yaml
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from helpers import LLAVA_TINY, TINY
from saint_export.cli import main
from saint_export.errors import MissingDependencyError
from saint_export.export.pipeline import onnx_models_from_torch
from saint_export.models.build import build_model
from saint_export.serve.install import server_install
from saint_export.serve.load import alone, redundant_images, run_load
from saint_export.serve.repository import python_repository_from_onnx
from saint_export.serve.server import TritonServer, free_ports
from saint_export.serve.session import model_states
from saint_export.tensorrt.triton import triton_repository_from_onnx

SCHEDULES = {"sample": {"layers": "0-1", "vote": "sample"}, "fixed": {"layers": "0-1", "fixed_r": [20, 30]},
             "vote": {"layers": "0-1"}}
MAX_BATCH = 8


@pytest.fixture(scope="module")
def install():
    try:
        return server_install()
    except MissingDependencyError as exc:
        pytest.skip(f"the bundled Triton server could not be set up: {exc}")


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve_models")
    files = {name: onnx_models_from_torch(build_model(TINY, overrides=o), out / f"{name}.onnx", None).portable
             for name, o in SCHEDULES.items()}
    files["dense"] = onnx_models_from_torch(build_model(TINY), out / "dense.onnx", None, pruned=False).portable
    # LLaVA's vision encoder (tiny, random): outputs image_embeds and kept_index [B, 29]
    (out / "llava_tiny.yaml").write_text(yaml.safe_dump(LLAVA_TINY))
    res = CliRunner().invoke(main, [str(out / "llava_tiny.yaml"), "--vision", "--batch", "2", "--quiet", "--out", str(out / "llava")])
    assert res.exit_code == 0, res.output
    files["vision"] = out / "llava/llava_tiny_vision.onnx"
    return files


@pytest.fixture(scope="module")
def images():
    """Generated images with flat regions and repeated tiles: SAINT prunes them unevenly."""
    return redundant_images(8, 224)


@pytest.fixture(scope="module")
def served(install, onnx_files, tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    for name, path in onnx_files.items():
        python_repository_from_onnx(path, repo, name, max_batch=MAX_BATCH)
    server = TritonServer(install, repo, free_ports(), log=repo.parent / "server.log").start()
    yield server
    server.stop()


def grpc_infer(server, model, x):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.ports.grpc}")
    tensor = grpcclient.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return client.infer(model, [tensor]).as_numpy("logits")


def http_infer(server, model, x):
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.ports.http}")
    tensor = httpclient.InferInput("pixels", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=True)
    return client.infer(model, [tensor]).as_numpy("logits")


def ort_run(path, x):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["logits"], {"pixels": x})[0]


@pytest.mark.parametrize("model", ["sample", "vote"])
def test_parity_grpc_http(served, onnx_files, images, model):
    for x in (images[:1], images[:MAX_BATCH]):
        want = ort_run(onnx_files[model], x)
        for got in (grpc_infer(served, model, x), http_infer(served, model, x)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_parity_with_kept_index(served, onnx_files):
    """The LLaVA vision encoder: image_embeds within 1e-5 and kept_index identical, gRPC and HTTP,
    at batch 1 and 8 (dynamic batching on: its token count is static)."""
    import onnxruntime as ort

    x = redundant_images(MAX_BATCH, 56)
    session = ort.InferenceSession(str(onnx_files["vision"]), providers=["CPUExecutionProvider"])
    for batch in (x[:1], x):
        embeds, kept = session.run(["image_embeds", "kept_index"], {"pixels": batch})
        for module in (grpcclient, httpclient):
            url = served.ports.grpc if module is grpcclient else served.ports.http
            tensor = module.InferInput("pixels", list(batch.shape), "FP32")
            tensor.set_data_from_numpy(batch)
            result = module.InferenceServerClient(f"127.0.0.1:{url}").infer("vision", [tensor])
            np.testing.assert_allclose(result.as_numpy("image_embeds"), embeds, rtol=0, atol=1e-5)
            assert result.as_numpy("kept_index").dtype == np.int64
            np.testing.assert_array_equal(result.as_numpy("kept_index"), kept)
    assert len({tuple(k) for k in kept}) > 1  # the images keep different tokens


def stats(server, model):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.ports.grpc}")
    s = client.get_inference_statistics(model).model_stats[0]
    return s.inference_count, s.execution_count


def stats_after(server, model, before, count):
    """Inference and execution counts since ``before``, once Triton has recorded all ``count``
    requests (its statistics are updated just after the responses go out)."""
    for _ in range(100):
        now = [a - b for a, b in zip(stats(server, model), before)]
        if now[0] >= count:
            break
        time.sleep(0.05)
    return now


def has_batching(server, model):
    config = text_format.Parse((server.repo / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    return config.HasField("dynamic_batching")


@pytest.mark.parametrize("model", ["sample", "fixed", "vote"])
def test_batch_invariance_under_the_dynamic_batcher(served, onnx_files, images, model):
    """8 clients x 25 one-image requests; every answer equals that image run alone."""
    expected = alone(onnx_files[model], images)
    assert not all(np.allclose(expected[0], e, atol=1e-3) for e in expected[1:])  # the images differ in answer
    before = stats(served, model)
    row = run_load(f"127.0.0.1:{served.ports.grpc}", model, images, expected, concurrency=8, requests=200)
    assert (row["sent"], row["answered"], row["failed"], row["wrong"]) == (200, 200, 0, 0), row["errors"]
    inferences, executions = stats_after(served, model, before, 200)
    assert inferences == 200
    if model == "vote":  # the batch vote: the repository turns batching off, one execution per request
        assert not has_batching(served, model) and executions == 200
    else:  # batched for real: fewer executions than requests
        assert has_batching(served, model) and executions < inferences


def raw_post(server, path, body: bytes):
    request = urllib.request.Request(f"http://127.0.0.1:{server.ports.http}{path}", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_faults_get_clean_errors_and_the_next_request_succeeds(served, onnx_files, images):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{served.ports.grpc}")
    good = images[:1]
    want = ort_run(onnx_files["sample"], good)
    nan, inf = good.copy(), good.copy()
    nan[0, 0, 5, 5], inf[0, 1, 7, 7] = np.nan, np.inf
    bad = {"shape": (good[:, :, :32, :32].copy(), "FP32", "pixels"), "dtype": (good.astype(np.float64), "FP64", "pixels"),
           "batch": (np.repeat(good, MAX_BATCH + 1, 0), "FP32", "pixels"), "nan": (nan, "FP32", "pixels"),
           "inf": (inf, "FP32", "pixels"), "name": (good, "FP32", "image")}
    for what, (x, dtype, name) in bad.items():
        tensor = grpcclient.InferInput(name, list(x.shape), dtype)
        tensor.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as err:
            client.infer("sample", [tensor])
        assert err.value.message() and "\n" not in err.value.message().strip(), what
        if what in ("nan", "inf"):  # caught by model.py, not by Triton's core
            assert "NaN or Inf" in err.value.message()
        np.testing.assert_allclose(grpc_infer(served, "sample", good), want, rtol=0, atol=1e-5)
    with pytest.raises(InferenceServerException):
        client.infer("sample", [])  # no input at all
    status, text = raw_post(served, "/v2/models/sample/infer", b"")  # a 0-byte request
    assert status == 400 and "error" in json.loads(text)
    np.testing.assert_allclose(http_infer(served, "sample", good), want, rtol=0, atol=1e-5)
    assert all(m["state"] == "READY" for m in model_states(served))


def test_second_serve_on_the_same_port_fails_in_one_line(served):
    p = served.ports
    res = CliRunner().invoke(main, ["serve", str(served.repo), "--http-port", str(p.http), "--grpc-port", str(p.grpc),
                                    "--metrics-port", str(p.metrics)])
    assert res.exit_code == 4 and res.output.count("\n") == 1 and "in use" in res.output, res.output
    assert served.ready()


def load_in_background(server, model, image, stop):
    """A client thread sending one image until ``stop``; returns its results list of (ok, logits or error)."""
    results = []

    def loop():
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.ports.grpc}")
        while not stop.is_set():
            tensor = grpcclient.InferInput("pixels", list(image.shape), "FP32")
            tensor.set_data_from_numpy(image)
            try:
                results.append((True, client.infer(model, [tensor], client_timeout=30).as_numpy("logits")))
            except InferenceServerException as exc:
                results.append((False, exc.message()))

    thread = threading.Thread(target=loop)
    thread.start()
    return thread, results


def test_new_version_is_picked_up_while_clients_run(install, onnx_files, images, tmp_path):
    """poll mode: version 2 (another schedule) placed into the repository under load; no request fails."""
    repo = tmp_path / "repo"
    model = python_repository_from_onnx(onnx_files["sample"], repo, "m", max_batch=MAX_BATCH)
    v1, v2 = (ort_run(onnx_files[k], images[:1]) for k in ("sample", "fixed"))
    assert not np.allclose(v1, v2, atol=1e-3)
    with TritonServer(install, repo, free_ports(), poll=True, log=tmp_path / "server.log") as server:
        stop = threading.Event()
        threads = [load_in_background(server, "m", images[:1], stop) for _ in range(3)]
        staging = model / ".2.part"
        shutil.copytree(model / "1", staging)
        shutil.copy2(onnx_files["fixed"], staging / "model.onnx")
        os.replace(staging, model / "2")  # the version folder appears whole
        for _ in range(600):  # until every client has seen version 2 answer (the poll is every second)
            if all(r and r[-1][0] and np.allclose(r[-1][1], v2, atol=1e-5) for _, r in threads):
                break
            time.sleep(0.1)
        stop.set()
        for thread, _ in threads:
            thread.join()
    results = [r for _, rs in threads for r in rs]
    assert all(ok for ok, _ in results), [e for ok, e in results if not ok][:3]
    assert all(np.allclose(got, v1, atol=1e-5) or np.allclose(got, v2, atol=1e-5) for _, got in results)
    assert np.allclose(results[-1][1], v2, atol=1e-5) and np.allclose(results[0][1], v1, atol=1e-5)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def serve_cli(repo, ports):
    cmd = [sys.executable, "-c", "from saint_export.cli import main; main()", "serve", str(repo), "--http-port",
           str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_killed_server_gives_clean_errors_and_serve_restarts(install, onnx_files, images, tmp_path):
    repo = tmp_path / "repo"
    python_repository_from_onnx(onnx_files["sample"], repo, "m", max_batch=MAX_BATCH)
    want = ort_run(onnx_files["sample"], images[:1])
    server = TritonServer(install, repo, free_ports()).start()
    stop = threading.Event()
    thread, results = load_in_background(server, "m", images[:1], stop)
    while len(results) < 5:
        time.sleep(0.05)
    pgid = server.process.pid
    os.killpg(pgid, signal.SIGKILL)  # the server and its stubs, mid-load
    while not any(not ok for ok, _ in results):
        time.sleep(0.05)
    stop.set()
    thread.join()
    server.stop()
    failures = [e for ok, e in results if not ok]
    assert failures and all(isinstance(e, str) and e for e in failures)
    assert all(np.allclose(got, want, atol=1e-5) for ok, got in results if ok)
    # `saint-export serve` on the same repository and ports serves again, and SIGTERM stops it cleanly
    proc = serve_cli(repo, server.ports)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "READY" in line or "error" in line:
            break
    assert any("model m version 1: READY" in x for x in lines), lines
    np.testing.assert_allclose(grpc_infer(server, "m", images[:1]), want, rtol=0, atol=1e-5)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0 and "server stopped" in rest
    assert not group_alive(proc.pid)  # no tritonserver, no python backend stub left behind


def test_production_repositories_fail_only_for_the_missing_backend(install, onnx_files, tmp_path):
    """The onnxruntime-backend and TensorRT-backend repositories we write, loaded by this server:
    the only reason they are not ready is that the bundle has no such backend library."""
    from test_triton import write_engine
    from saint_export.tensorrt.triton import triton_repository_from_engine

    repo = tmp_path / "repo"
    triton_repository_from_onnx(onnx_files["sample"], repo, "ort_sample", max_batch=MAX_BATCH)
    triton_repository_from_onnx(onnx_files["vote"], repo, "ort_vote", max_batch=MAX_BATCH)
    plan, lib = write_engine(tmp_path, fixed=True)
    triton_repository_from_engine(plan, repo, name="trt_fixed", plugin_library=lib)
    python_repository_from_onnx(onnx_files["fixed"], repo, "served", max_batch=MAX_BATCH)
    # the check can fail: a config Triton cannot parse is reported for that, not for the backend (checks that
    # need the backend itself, e.g. dims against the ONNX, come after the library is found: not reached here)
    broken = repo / "ort_broken"
    shutil.copytree(repo / "ort_vote", broken)
    text = (broken / "config.pbtxt").read_text().replace('name: "ort_vote"', 'name: "ort_broken"')
    (broken / "config.pbtxt").write_text(text.replace("max_batch_size: 8", "max_batch_size: 8\nmax_batch: 8"))
    with TritonServer(install, repo, free_ports(), log=tmp_path / "server.log") as server:
        states = {m["name"]: m for m in model_states(server)}
    assert states["served"]["state"] == "READY"
    broken = states["ort_broken"]  # listed, never loaded (the repository scan cannot parse it)
    assert broken.get("state") != "READY" and "backend library" not in broken.get("reason", ""), broken
    assert 'no field named "max_batch"' in (tmp_path / "server.log").read_text()  # Triton names the unknown field
    backend = {"ort_sample": "onnxruntime", "ort_vote": "onnxruntime", "trt_fixed": "tensorrt"}
    for name, lib_name in backend.items():
        m = states[name]
        assert m["state"] == "UNAVAILABLE", m
        assert m["reason"] == f"Invalid argument: unable to find backend library for backend '{lib_name}', try specifying runtime on the model configuration.", m


def test_triton_backend_python_command(onnx_files, tmp_path):
    run = lambda *a: CliRunner().invoke(main, list(a))  # noqa: E731
    for name, batching in (("sample", True), ("vote", False)):
        res = run("triton", str(onnx_files[name]), "--repo", str(tmp_path / "r"), "--name", name, "--backend", "python")
        assert res.exit_code == 0 and "saint-export serve" in res.output, res.output
        config = text_format.Parse((tmp_path / "r" / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert config.backend == "python" and config.max_batch_size == 8 and config.HasField("dynamic_batching") == batching
        assert (tmp_path / "r" / name / "1/model.onnx").read_bytes() == onnx_files[name].read_bytes()
        assert "class TritonPythonModel" in (tmp_path / "r" / name / "1/model.py").read_text()
    (tmp_path / "m.plan").write_bytes(b"engine")
    res = run("triton", str(tmp_path / "m.plan"), "--repo", str(tmp_path / "r2"), "--backend", "python")
    assert res.exit_code == 3 and "takes a portable .onnx" in res.output
    res = run("serve", str(tmp_path / "absent.onnx"))
    assert res.exit_code == 4 and res.output.strip().count("\n") == 0 and "does not exist" in res.output


def test_serve_bench_writes_the_load_report(install, onnx_files, tmp_path):
    p = free_ports()
    res = CliRunner().invoke(main, ["serve", str(onnx_files["sample"]), "--dense", str(onnx_files["dense"]), "--bench",
                                    "--requests", "8", "--out", str(tmp_path / "out"), "--http-port", str(p.http),
                                    "--grpc-port", str(p.grpc), "--metrics-port", str(p.metrics)])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "out/sample/serve_bench.json").read_text())
    rows = report["rows"]
    assert report["tool"] == "saint-export"
    assert [(r["model"], r["concurrency"]) for r in rows] == [(m, c) for c in (1, 4, 16) for m in ("dense", "sample")]
    assert all((r["sent"], r["answered"], r["failed"], r["wrong"]) == (8, 8, 0, 0) for r in rows), rows
    assert all(0 < r["p50_ms"] <= r["p99_ms"] and r["throughput_rps"] > 0 for r in rows)
    assert "| sample | 16 | 8 | 8 | 0 | 0 |" in res.output and "server stopped" in res.output


def test_serve_refuses_a_python_model_without_model_py(tmp_path):
    (tmp_path / "repo/x/1").mkdir(parents=True)
    (tmp_path / "repo/x/config.pbtxt").write_text('name: "x"\nbackend: "python"\nmax_batch_size: 1\n')
    res = CliRunner().invoke(main, ["serve", str(tmp_path / "repo")])
    assert res.exit_code == 4 and "needs a version folder with model.py" in res.output and res.output.count("\n") == 1
