"""The benchmark script ``benchmarks/run.py``: one tiny real run, plus units."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


run = load_benchmark_script("run")

TINY_ARGS = [
    "--dataset",
    "digits",
    "--n-samples",
    "200",
    "--param",
    "feature_epochs=1",
    "--param",
    "self_epochs=1",
    "--param",
    "semi_epochs=1",
    "--param",
    "n_heads=2",
    "--param",
    "device='cpu'",
]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One real benchmark: both methods in child processes, with --docs."""
    tmp = tmp_path_factory.mktemp("bench")
    out, docs = tmp / "out", tmp / "docs" / "benchmarks.md"
    stdout = io.StringIO()
    argv = TINY_ARGS + ["--out-dir", str(out), "--docs", str(docs)]
    with contextlib.redirect_stdout(stdout):
        results = run.main(argv)
    return {"results": results, "out": out, "docs": docs, "stdout": stdout.getvalue()}


def _check_scores(scores):
    assert set(scores) == {"acc", "nmi", "ari"}
    assert 0.0 <= scores["acc"] <= 1.0
    assert 0.0 <= scores["nmi"] <= 1.0 + 1e-9
    assert -1.0 <= scores["ari"] <= 1.0


def test_results_json(real_run):
    path = real_run["out"] / "results.json"
    results = json.loads(path.read_text())
    assert results == real_run["results"]
    for key in ("dataset", "n_samples", "image_shape", "params", "seed", "machine"):
        assert key in results
    assert results["dataset"] == "digits"
    assert results["n_samples"] == 200
    assert results["image_shape"] == [8, 8]
    assert results["params"] == {
        "feature_epochs": 1,
        "self_epochs": 1,
        "semi_epochs": 1,
        "n_heads": 2,
        "device": "cpu",
    }
    assert results["data"]["n_total"] == 1797 and results["data"]["n_classes"] == 10
    machine = results["machine"]
    for key in ("platform", "cpu_count", "memory_gib", "python", "torch", "sklearn"):
        assert machine[key], key
    assert machine["device"] == "cpu" and machine["date"]

    kmeans, spice = results["methods"]["kmeans"], results["methods"]["spice"]
    for method in (kmeans, spice):
        _check_scores(method["scores"])
        assert method["fit_seconds"] > 0
        assert 10 < method["peak_rss_mib"] < 64 * 1024
    # Separate processes: SPICE (torch) needs more memory than KMeans.
    assert spice["peak_rss_mib"] > kmeans["peak_rss_mib"]
    assert set(spice["stage_seconds"]) == {"feature", "self-label", "semi"}
    assert all(v >= 0 for v in spice["stage_seconds"].values())
    assert 0 <= spice["n_reliable"] <= 200
    assert spice["epochs_run"] == {"feature": 1, "self-label": 1, "semi": 1}
    assert [s["stage"] for s in spice["stages"]] == ["feature", "self-label", "semi"]
    for stage in spice["stages"]:
        _check_scores(stage["scores"])
    assert spice["stages"][-1]["scores"] == spice["scores"]

    labels = np.load(real_run["out"] / "labels.npz")
    assert labels["y"].shape == labels["spice"].shape == (200,)
    assert labels["reliable_mask"].sum() == spice["n_reliable"]


def test_results_md_and_stdout(real_run):
    text = (real_run["out"] / "results.md").read_text()
    table = run.render_markdown(real_run["results"])
    assert table in text
    assert table == real_run["stdout"]
    lines = table.strip().splitlines()
    assert lines[0] == "| Method | ACC | NMI | ARI | time (s) | peak RSS (MiB) |"
    assert len(lines) == 2 + 5  # header, rule, 2 methods, 3 stages
    names = ("KMeans (raw", "SPICEClustering", "stage 1", "stage 2", "stage 3")
    for name in names:
        assert sum(name in line for line in lines[2:]) == 1, name
    assert "python benchmarks/run.py --dataset digits" in text


def test_clusters_png(real_run):
    with Image.open(real_run["out"] / "clusters.png") as image:
        assert image.size == run.grid_size(10, (8, 8))
        # 8x8 digits are upscaled to 32 px: 72 + 10 * 34 + 2 by 2 + 10 * 34.
        assert image.size == (414, 342)


def test_docs_written(real_run):
    text = real_run["docs"].read_text()
    assert text.count("<!-- benchmark:digits:start -->") == 1
    assert "![Random samples of each SPICE cluster](img/clusters_digits.png)" in text
    image = real_run["docs"].parent / "img" / "clusters_digits.png"
    assert image.read_bytes() == (real_run["out"] / "clusters.png").read_bytes()
    assert "* Command: `python benchmarks/run.py --dataset digits" in text
    assert "* Machine: " in text


def _fake_run_method(method, X, n_clusters, seed=0, params=None, workdir=None):
    """Stands in for the child processes: random labels, made-up numbers."""
    rng = np.random.default_rng(seed)
    n = len(X)
    result = {
        "fit_seconds": 0.5,
        "process_seconds": 1.0,
        "peak_rss_mib": 100.0,
        "peak_rss_source": "VmHWM",
        "ru_maxrss_mib": 100.0,
        "vmhwm_mib": 100.0,
    }
    labels = {"labels": rng.integers(n_clusters, size=n)}
    if method == "spice":
        result.update(
            rss_before_fit_mib=50.0,
            stage_seconds={"feature": 0.3, "self-label": 0.1, "semi": 0.1},
            n_reliable=3,
            kmeans_on_embedding_seconds=0.01,
            epochs_run={"feature": 1, "self-label": 1, "semi": 1},
            device_name="cpu",
        )
        labels.update(
            self_labels=rng.integers(n_clusters, size=n),
            embedding_kmeans_labels=rng.integers(n_clusters, size=n),
            reliable_mask=np.arange(n) < 3,
        )
    return result, labels


def _image_folder(root, classes=("a", "b", "c"), per_class=4):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(6, 6), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")
    return root


def test_docs_rerun_and_two_datasets(real_run, tmp_path, monkeypatch, capsys):
    # Same data set twice (second run with the children faked), then a second
    # data set: one section each, the first one replaced.
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text(real_run["docs"].read_text() + "\nHand-written notes.\n")
    monkeypatch.setattr(run, "run_method", _fake_run_method)
    run.main(TINY_ARGS + ["--out-dir", str(tmp_path / "d"), "--docs", str(docs)])
    text = docs.read_text()
    assert text.count("<!-- benchmark:digits:start -->") == 1
    assert text.count("## Digits") == 1
    assert "--out-dir " + str(tmp_path / "d") in text  # the new section
    assert "Hand-written notes." in text

    folder = _image_folder(tmp_path / "shapes")
    out = tmp_path / "f"
    run.main(["--dataset", "folder", "--data-path", str(folder), "--out-dir", str(out)])
    run.main(
        [
            "--dataset",
            "folder",
            "--data-path",
            str(folder),
            "--out-dir",
            str(out),
            "--image-size",
            "8",
            "--docs",
            str(docs),
        ]
    )
    text = docs.read_text()
    assert text.count("<!-- benchmark:digits:start -->") == 1
    assert text.count("<!-- benchmark:folder-shapes:start -->") == 1
    assert text.count("<!-- benchmark:") == 4  # two start and two end markers
    assert (docs.parent / "img" / "clusters_folder-shapes.png").is_file()
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["n_classes"] == 3 and results["image_shape"] == [8, 8]
    with Image.open(out / "clusters.png") as image:
        assert image.size == run.grid_size(3, (8, 8))
    assert "| KMeans (raw pixels, n_init=10) |" in capsys.readouterr().out


def test_cluster_grid_layout():
    images = np.zeros((7, 8, 8), dtype=np.float32)
    images[:, 2:6, 2:6] = 1.0
    labels = np.array([0, 0, 0, 2, 2, 2, 2])
    grid = run.cluster_grid(images, labels, n_clusters=4, per_cluster=3)
    assert grid.mode == "RGB"
    assert grid.size == run.grid_size(4, (8, 8), per_cluster=3)
    assert grid.size == (72 + 3 * 34 + 2, 2 + 4 * 34)
    pixels = np.asarray(grid)
    # Row 0: three upscaled images (white square in a black 32x32 tile).
    left, top = 72 + 2, 2
    tile = pixels[top : top + 32, left : left + 32, 0]
    assert tile[0, 0] == 0 and tile[8:24, 8:24].min() == 255
    # Row 1 (empty cluster) has no tiles: only the white background.
    assert pixels[36 : 36 + 32, 74:].min() == 255
    # Row 3 (empty, beyond the labels' max) is there too.
    assert pixels[2 + 3 * 34 : 2 + 3 * 34 + 32, 74:].min() == 255


def test_cluster_grid_colour_and_large_images():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 200, 100, 3), dtype=np.uint8)
    grid = run.cluster_grid(images, [1, 1, 0, 0, 0], per_cluster=2)
    # Downscaled to fit 96 px: 96 x 48 cells, two rows.
    assert grid.size == (72 + 2 * (48 + 2) + 2, 2 + 2 * (96 + 2))
    with pytest.raises(ValueError, match="one label per image"):
        run.cluster_grid(images, [0, 1])


def test_update_docs(tmp_path):
    docs = tmp_path / "sub" / "bench.md"
    run.update_docs(docs, "digits", "## Digits\n\nfirst\n")
    run.update_docs(docs, "cifar10", "## CIFAR-10\n\ncifar\n")
    run.update_docs(docs, "digits", "## Digits\n\nsecond $1 \\1\n")
    text = docs.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count("## Digits") == 1 and "first" not in text
    assert "second $1 \\1" in text  # no regex escapes
    assert text.count("## CIFAR-10") == 1
    # Order is kept: digits (replaced in place) before cifar10.
    assert text.index("## Digits") < text.index("## CIFAR-10")


def test_parse_params_and_cli_errors(capsys):
    params = run.parse_params(
        ["feature_epochs=5", "device=cuda", "image_shape=(8, 8)", "n_heads=2"]
    )
    assert params == {
        "feature_epochs": 5,
        "device": "cuda",
        "image_shape": (8, 8),
        "n_heads": 2,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        run.parse_params(["feature_epochs"])
    with pytest.raises(ValueError, match="--seed"):
        run.parse_params(["random_state=1"])
    with pytest.raises(SystemExit) as exc:
        run.main(["--dataset", "digits", "--param", "no_such_param=1"])
    assert exc.value.code == 2
    assert "no_such_param" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        run.main(["--dataset", "cifar10"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        run.main(["--help"])
    assert exc.value.code == 0
    assert "--n-samples" in capsys.readouterr().out


def test_load_dataset_subset_is_seeded():
    X1, y1, info1 = run.load_dataset("digits", n_samples=50, seed=3)
    X2, y2, info2 = run.load_dataset("digits", n_samples=50, seed=3)
    assert X1.shape == (50, 8, 8) and info1["n_classes"] == 10
    np.testing.assert_array_equal(info1["indices"], info2["indices"])
    assert np.all(np.diff(info1["indices"]) > 0)
    _, _, info3 = run.load_dataset("digits", n_samples=5000)
    assert info3["n_total"] == len(info3["indices"]) == 1797


def test_peak_rss_is_positive():
    peak = run.peak_rss()
    assert peak["peak_rss_mib"] > 0
    assert peak["peak_rss_source"] in ("VmHWM", "ru_maxrss")


def test_render_section_skipped_semi(real_run):
    results = json.loads(json.dumps(real_run["results"]))
    results["methods"]["spice"]["epochs_run"].pop("semi")
    section = run.render_section(results, image_path="img/x.png", heading_level=3)
    assert section.startswith("### Digits")
    assert "Stage 3 was skipped" in section
    assert "![Random samples of each SPICE cluster](img/x.png)" in section
    assert run.render_markdown(results) in section


# ----------------------------------------------------------------- slow runs
# Full benchmark runs with default parameters; minutes each on a 2-core CPU.
# Run with ``python -m pytest -m slow``.


@pytest.mark.slow
def test_digits_defaults_reach_readme_accuracy(tmp_path):
    results = run.main(["--dataset", "digits", "--out-dir", str(tmp_path)])
    spice = results["methods"]["spice"]
    kmeans = results["methods"]["kmeans"]
    assert spice["scores"]["acc"] >= 0.95
    assert spice["scores"]["acc"] > kmeans["scores"]["acc"]
    stage_acc = [stage["scores"]["acc"] for stage in spice["stages"]]
    # SPICE-Self beats KMeans on the stage-1 features; SPICE-Semi beats both.
    assert stage_acc[0] < stage_acc[1] < stage_acc[2]


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir(),
    reason="needs Debian's dataset-fashion-mnist",
)
def test_fashion_mnist_subset_beats_kmeans(tmp_path):
    args = ["--dataset", "fashion-mnist", "--n-samples", "5000"]
    results = run.main(args + ["--out-dir", str(tmp_path)])
    spice = results["methods"]["spice"]
    kmeans = results["methods"]["kmeans"]
    assert spice["scores"]["acc"] > kmeans["scores"]["acc"] + 0.05
    assert spice["peak_rss_mib"] < 4096
