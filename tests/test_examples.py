"""The scripts and the notebook in examples/ run, in their quick mode.

Each runs as a user would run it (``python examples/<name>.py`` from the
repository root) with ``SKSPICE_EXAMPLE_QUICK=1``: tiny data, one epoch per
stage. The working tree's ``skspice`` is put first on ``PYTHONPATH`` so an
older installed copy is not what gets tested. Tiny fits gain nothing from
several threads but lose much when the CPU is shared (two torch threads on a
busy 2-core machine made a 75-image fit 40 times slower), so the scripts run
single-threaded unless ``OMP_NUM_THREADS`` is already set.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from skspice.datasets import FASHION_MNIST_PATH

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _env():
    path = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH")] if p)
    env = dict(os.environ, SKSPICE_EXAMPLE_QUICK="1", PYTHONPATH=path)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(script, *args):
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"{script} failed:\n{out.stdout}\n{out.stderr[-3000:]}"
    return out.stdout


def _assert_png(path, min_width=300):
    from PIL import Image

    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] >= min_width


def _assert_scores(stdout, *names):
    for name in names:
        lines = [line for line in stdout.splitlines() if line.startswith(name)]
        assert lines, f"no line for {name!r} in:\n{stdout}"
        assert all(key in lines[0] for key in ("ACC 0.", "NMI ", "ARI ")), lines[0]


def test_digits_demo_the_readme_command():
    stdout = _run("digits_demo.py")
    assert "digits: 200 images of 8x8 px" in stdout
    _assert_scores(stdout, "KMeans (pixels)", "SPICEClustering")


def test_quickstart_prints_scores_and_saves_both_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "img"  # created by the script
    stdout = _run("quickstart.py", "--out", out)
    assert "digits: 200 images of 8x8 px" in stdout
    _assert_scores(stdout, "KMeans (pixels)", "SPICEClustering")
    for name in ("quickstart_clusters.png", "quickstart_history.png"):
        _assert_png(out / name)
        assert f"saved {out / name}" in stdout


@pytest.mark.skipif(
    not Path(FASHION_MNIST_PATH).is_dir(),
    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_PATH}",
)
def test_fashion_mnist_subset_scores_and_grid(tmp_path):
    pytest.importorskip("matplotlib")
    stdout = _run("fashion_mnist.py", "--n-samples", 150, "--out", tmp_path)
    assert "Fashion-MNIST: 150 images of 28x28 px" in stdout
    _assert_scores(stdout, "KMeans (pixels)", "SPICEClustering")
    assert "cluster " in stdout  # the per-cluster summary
    _assert_png(tmp_path / "fashion_mnist_clusters.png")


def test_pipeline_gridsearch_prints_best_parameters():
    stdout = _run("pipeline_gridsearch.py")
    assert stdout.count("on held-out folds") == 2  # one line per candidate
    assert "best parameters: {'spice__self_lr': " in stdout
    assert "refitted on all 150: ARI" in stdout


def test_custom_backbone_instance_and_class_kwargs():
    stdout = _run("custom_backbone.py")
    _assert_scores(stdout, "module instance", "(class, kwargs)")
    lines = stdout.splitlines()
    assert next(s for s in lines if s.startswith("module instance")).endswith(
        "features 32"
    )
    assert next(s for s in lines if s.startswith("(class, kwargs)")).endswith(
        "features 48"
    )


def test_resume_checkpoint_resumes_the_interrupted_fit(tmp_path):
    stdout = _run("resume_checkpoint.py", "--checkpoint-dir", tmp_path / "ckpt")
    assert "first fit interrupted after" in stdout
    assert "resumed: " in stdout and "came from the checkpoint, not re-run" in stdout
    assert "checkpoint files left after the fit: 0" in stdout
    _assert_scores(stdout, "SPICEClustering")


def test_quickstart_notebook_runs_without_errors(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # ipykernel provides the "python3" kernel: jupyter_client falls back to it
    # (ensure_native_kernel) when no kernel spec is installed.
    pytest.importorskip("ipykernel")
    for key, value in _env().items():  # the kernel inherits this environment
        monkeypatch.setenv(key, value)

    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), (
        "commit the notebook without outputs"
    )
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on a failing cell
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # cluster grid, loss curves, reliability
    assert any("SPICEClustering  ACC" in o.get("text", "") for o in outputs)
