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


def _quick_gpu_args(folder, out):
    """``gpu.py`` arguments for a tiny CPU run on an IDX set in ``folder``."""
    _write_idx(folder)
    args = ["--data", str(folder), "--device", "cpu", "--results", str(out)]
    for p in ("feature_epochs=1", "self_epochs=1", "semi_epochs=1", "batch_size=16"):
        args += ["--param", p]
    return args


def test_gpu_benchmark_runs_on_cpu(tmp_path, capsys):
    gpu = load_benchmark_script("gpu")
    out = tmp_path / "gpu.jsonl"
    assert gpu.main(_quick_gpu_args(tmp_path, out)) == 0
    record = json.loads(out.read_text().splitlines()[-1])
    assert record["n_samples"] == 90 and record["precision"] == "fp32"
    assert set(record["samples_per_second"]) == {"feature", "self-label", "semi"}
    assert all(v > 0 for v in record["samples_per_second"].values())
    assert 0 <= record["final"]["acc"] <= 1 and record["peak_gpu_memory_mib"] is None
    assert "samples/s" in capsys.readouterr().out


def test_gpu_benchmark_runs_seeds_side_by_side(tmp_path):
    gpu = load_benchmark_script("gpu")
    out = tmp_path / "gpu.jsonl"
    args = _quick_gpu_args(tmp_path, out)
    assert gpu.main(args + ["--seeds", "0", "1", "--jobs", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["seed"] for r in records) == [0, 1]
    assert all(r["params"]["batch_size"] == 16 for r in records)


def test_gpu_benchmark_drops_options_with_their_values():
    gpu = load_benchmark_script("gpu")
    argv = ["--data", "d", "--seeds", "0", "1", "--jobs=2", "--param", "a=1"]
    assert gpu._without(argv, ("--seeds", "--jobs")) == [
        "--data",
        "d",
        "--param",
        "a=1",
    ]


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


def test_stage_budget_loads_suite_sets_by_name(monkeypatch):
    budget = load_benchmark_script("stage_budget")
    calls = []
    monkeypatch.setattr(
        budget,
        "load_set",
        lambda name, path: calls.append(name) or (np.zeros((5, 2)), np.arange(5)),
    )
    X, y = budget.load_data("shapes", 3)
    assert calls == ["shapes"] and X.shape == (3, 2) and y.tolist() == [0, 1, 2]
    # A name both know ("digits") is load_dataset's, with its seeded subset.
    X, y = budget.load_data("digits", 50)
    assert calls == ["shapes"] and X.shape == (50, 8, 8)
    with pytest.raises(ValueError, match="unknown"):
        budget.load_data("no-such-set")


def test_stage_budget_benchmark_records_curve_and_purity(tmp_path, monkeypatch):
    from skspice.stages import semi

    budget = load_benchmark_script("stage_budget")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 40)
    X = rng.random((80, 8, 8)).astype(np.float32) * 0.2
    X[y == 1, 2:6, 2:6] += 0.8  # two kinds of image
    monkeypatch.setattr(budget, "load_dataset", lambda *a, **k: (X, y))
    end_epoch, settings = semi.FixMatchStage.end_epoch, semi.SEMI
    out = tmp_path / "stages.jsonl"
    common = ["--work-dir", str(tmp_path), "--results", str(out), "--seed", "0"]
    common += ["--param", "n_clusters=2", "--param", "self_epochs=1"]
    assert (
        budget.main(["--step", "features", "--param", "feature_epochs=2"] + common) == 0
    )
    args = ["--step", "semi", "--param", "semi_epochs=2"] + common
    assert budget.main(args + ["--semi", "balanced_batches=True"]) == 0
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert first["step"] == "features" and "reliable" not in first
    assert [p["epoch"] for p in second["semi_curve"]] == [1, 2]
    assert second["semi_settings"]["balanced_batches"] is True
    assert second["semi_curve"][-1]["acc"] == second["final"]["acc"]
    reliable = second["reliable"]
    assert reliable["size"] == sum(reliable["counts"]["kept"])
    assert 0 <= reliable["purity"] <= 1 or reliable["size"] == 0
    # The instrumentation and the settings are restored afterwards.
    assert semi.FixMatchStage.end_epoch is end_epoch and semi.SEMI is settings
