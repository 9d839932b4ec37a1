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
measure = load_benchmark_script("measure")
params_module = load_benchmark_script("params")
report = load_benchmark_script("report")

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
    np.testing.assert_array_equal(
        labels["reliable_labels"] >= 0, labels["reliable_mask"]
    )
    assert 0 <= spice["reliable_purity"] <= 1


def test_results_md_and_stdout(real_run):
    text = (real_run["out"] / "results.md").read_text()
    table = report.render_markdown(real_run["results"])
    assert table in text
    assert table == real_run["stdout"]
    lines = table.strip().splitlines()
    assert lines[0] == "| Method | ACC | NMI | ARI | time (s) | peak RSS (MiB) |"
    assert len(lines) == 2 + 5  # header, rule, 2 methods, 3 stages
    names = ("KMeans (raw", "SPICEClustering", "stage 1", "stage 2", "stage 3")
    for name in names:
        assert sum(name in line for line in lines[2:]) == 1, name
    assert "python benchmarks/run.py --dataset digits" in text


def _png_size(fig):
    """Pixel size of ``fig`` saved by ``run.save_cluster_grid``."""
    width, height = fig.get_size_inches() * run.GRID_DPI
    return round(width), round(height)


def test_clusters_png(real_run):
    from skspice.plotting import plot_cluster_grid

    labels = np.load(real_run["out"] / "labels.npz")["spice"]
    images = np.zeros((len(labels), 8, 8), dtype=np.float32)
    fig = plot_cluster_grid(images, labels, proba=np.eye(10)[labels])
    with Image.open(real_run["out"] / "clusters.png") as image:
        # One row per cluster (all 10) and 10 images per row.
        assert image.size == _png_size(fig)
        assert image.size[0] > image.size[1] / 2 and image.size[1] > 300


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
            reliable_labels=np.where(np.arange(n) < 3, 0, -1),
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
        three_rows = run.save_cluster_grid(
            tmp_path / "g.png", np.zeros((3, 8, 8)), [0, 1, 2], 3
        )
        assert image.size == _png_size(three_rows)
    assert "| KMeans (raw pixels, n_init=10) |" in capsys.readouterr().out


def test_cluster_grid_rows_and_random_samples(tmp_path):
    # 7 images, clusters 1 and 3 empty: still one row each (4 rows).
    images = np.arange(7, dtype=np.float32)[:, None, None] * np.ones((7, 8, 8)) / 7
    labels = np.array([0, 0, 0, 2, 2, 2, 2])
    fig = run.save_cluster_grid(tmp_path / "g.png", images, labels, 4, per_cluster=2)
    rows = [ax.get_ylabel() for ax in fig.axes[::2]]
    assert rows == [
        "cluster 0 (n=3)",
        "cluster 1 (n=0)",
        "cluster 2 (n=4)",
        "cluster 3 (n=0)",
    ]
    with Image.open(tmp_path / "g.png") as image:
        assert image.size == _png_size(fig)
    # Two of cluster 2's four images, chosen with the seed.
    shown = [ax.images[0].get_array()[0, 0] * 7 for ax in fig.axes[4:6]]
    assert set(np.round(shown).astype(int)) <= {3, 4, 5, 6}
    again = run.save_cluster_grid(tmp_path / "h.png", images, labels, 4, per_cluster=2)
    assert [ax.images[0].get_array()[0, 0] for ax in again.axes[4:6]] == [
        ax.images[0].get_array()[0, 0] for ax in fig.axes[4:6]
    ]
    with pytest.raises(ValueError, match="one per image"):
        run.save_cluster_grid(tmp_path / "x.png", images, [0, 1], 2)


def test_update_docs(tmp_path):
    docs = tmp_path / "sub" / "bench.md"
    report.update_docs(docs, "digits", "## Digits\n\nfirst\n")
    report.update_docs(docs, "cifar10", "## CIFAR-10\n\ncifar\n")
    report.update_docs(docs, "digits", "## Digits\n\nsecond $1 \\1\n")
    text = docs.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count("## Digits") == 1 and "first" not in text
    assert "second $1 \\1" in text  # no regex escapes
    assert text.count("## CIFAR-10") == 1
    # Order is kept: digits (replaced in place) before cifar10.
    assert text.index("## Digits") < text.index("## CIFAR-10")


def test_parse_params_and_cli_errors(capsys):
    parse_params = params_module.parse_params
    params = parse_params(
        ["feature_epochs=5", "device=cuda", "image_shape=(8, 8)", "n_heads=2"],
        reserved=run.RESERVED_PARAMS,
    )
    assert params == {
        "feature_epochs": 5,
        "device": "cuda",
        "image_shape": (8, 8),
        "n_heads": 2,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(["feature_epochs"], reserved=run.RESERVED_PARAMS)
    with pytest.raises(ValueError, match="--seed"):
        parse_params(["random_state=1"], reserved=run.RESERVED_PARAMS)
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


def test_flatten_pixels_scales_like_the_library():
    from skspice.inputs import as_model_input

    rng = np.random.default_rng(0)
    for X in (
        rng.integers(0, 256, size=(4, 5, 6), dtype=np.uint8),
        rng.random((4, 5, 6)).astype(np.float32),
        rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8),
    ):
        expected = as_model_input(X)[0].transpose(0, 2, 3, 1).reshape(4, -1)
        np.testing.assert_array_equal(measure.flatten_pixels(X), expected)


def test_peak_rss_is_positive():
    peak = measure.peak_rss()
    assert peak["peak_rss_mib"] > 0
    assert peak["peak_rss_source"] in ("VmHWM", "ru_maxrss")


def test_render_section_skipped_semi(real_run):
    results = json.loads(json.dumps(real_run["results"]))
    results["methods"]["spice"]["epochs_run"].pop("semi")
    section = report.render_section(results, image_path="img/x.png", heading_level=3)
    assert section.startswith("### Digits")
    assert "Stage 3 was skipped" in section
    assert "![Random samples of each SPICE cluster](img/x.png)" in section
    assert report.render_markdown(results) in section


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
