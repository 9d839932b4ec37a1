"""The GPU and throughput benchmark scripts run end to end (on the CPU, tiny)."""

import gzip
import json

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script


def _write_idx(folder, n=60):
    """A tiny Fashion-MNIST-shaped IDX set (gzipped, as Debian ships it)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        head = np.array([0x803, count, 28, 28], dtype=">u4").tobytes()
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(head + images.tobytes())
        head = np.array([0x801, count], dtype=">u4").tobytes()
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(head + labels.tobytes())


def test_gpu_benchmark_runs_on_cpu(tmp_path, capsys):
    gpu = load_benchmark_script("gpu")
    _write_idx(tmp_path)
    out = tmp_path / "gpu.jsonl"
    args = ["--data", str(tmp_path), "--device", "cpu", "--results", str(out)]
    for p in ("feature_epochs=1", "self_epochs=1", "semi_epochs=1", "batch_size=16"):
        args += ["--param", p]
    assert gpu.main(args) == 0
    record = json.loads(out.read_text().splitlines()[-1])
    assert record["n_samples"] == 90 and record["precision"] == "fp32"
    assert set(record["samples_per_second"]) == {"feature", "self-label", "semi"}
    assert all(v > 0 for v in record["samples_per_second"].values())
    assert 0 <= record["final"]["acc"] <= 1 and record["peak_gpu_memory_mib"] is None
    assert "samples/s" in capsys.readouterr().out


def test_gpu_benchmark_refuses_cuda_without_a_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    gpu = load_benchmark_script("gpu")
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu.main(["--data", str(tmp_path)])


def test_throughput_benchmark_runs(tmp_path, monkeypatch):
    throughput = load_benchmark_script("throughput")
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    monkeypatch.setattr(throughput, "load_dataset", lambda *a, **k: (X, None))
    out = tmp_path / "t.json"
    args = ["--n-samples", "64", "--batch-size", "16", "--repeats", "1"]
    assert throughput.main(args + ["--results", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["stage"] for r in rows] == ["feature", "self-label", "semi"]
    assert all(r["ratio"] > 0 for r in rows)
