"""Tests for what a fit shows: tqdm bars (verbose=1), silence (verbose=0) and
the log records of skspice.progress."""

import logging
import re
import warnings

import pytest
import torch
import tqdm.auto
from params import quick_params

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.progress import StageProgress, phase
from skspice.training import Stage, iterate_minibatches, run_stage

STAGES = ("feature", "self-label", "semi")


class Toy(Stage):
    """Least squares on 64 samples, 4 steps per epoch."""

    name = "toy"

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 3, generator=gen)
        self.y = self.x.sum(1)
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.gen = gen

    def parameters(self):
        return [self.w]

    def steps_per_epoch(self):
        return 4

    def batches(self, epoch):
        yield from iterate_minibatches(64, 16, self.gen)

    def loss(self, idx):
        return ((self.x[idx] @ self.w - self.y[idx]) ** 2).mean()


@pytest.fixture(scope="module")
def digits():
    return load_digits_images()[0][:100]


@pytest.fixture
def bars(monkeypatch):
    """Every tqdm bar that skspice.progress creates (it imports tqdm.auto lazily)."""
    made = []

    class Recorded(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    return made


def test_verbose_0_prints_nothing_but_logs_every_epoch(digits, capfd, caplog):
    caplog.set_level(logging.INFO, logger="skspice")
    with warnings.catch_warnings():  # a tiny fit warns of empty clusters
        warnings.simplefilter("ignore")
        est = SPICEClustering(**quick_params(verbose=0)).fit(digits)
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
    # One INFO record per epoch of every stage, with the history's values.
    epochs = [r for r in caplog.records if hasattr(r, "history_record")]
    logged = [(r.history_record["stage"], r.history_record["loss"]) for r in epochs]
    assert logged == [(r["stage"], r["loss"]) for r in est.history_]
    for r in epochs:
        assert r.levelno == logging.INFO and r.name.startswith("skspice.")
        rec = r.history_record
        assert r.getMessage().startswith(f"[{rec['stage']}] epoch {rec['epoch']}/1 ")
        assert "loss=" in r.getMessage()
    # The phases outside training are logged too.
    messages = [r.getMessage() for r in caplog.records]
    assert any("computing features of 100 samples" in m for m in messages)
    assert any("nearest neighbours" in m for m in messages)
    assert any(m.startswith("[semi] labelled set: ") for m in messages)


def test_verbose_1_shows_one_bar_per_stage(digits, capfd, bars):
    est = SPICEClustering(**quick_params(verbose=1)).fit(digits)
    out, err = capfd.readouterr()
    # The bars go to stderr, named after their stage, with the running loss.
    for name in STAGES:
        assert re.search(rf"{name} epoch 1/1: +\d+%\|.*loss=[0-9.]+", err)
    # Short lines on stdout for the long steps outside training, no epoch lines.
    assert "[feature] computing features of 100 samples" in out
    assert "[semi] labelled set: " in out
    assert "] epoch" not in out

    assert [b.desc.split()[0] for b in bars] == list(STAGES)
    for bar in bars:
        # The total is known up front and every step moved the bar.
        assert bar.total is not None and bar.n == bar.total > 0
    # The stage-specific values, stage 3 with its labelled-set size.
    postfix = {b.desc.split()[0]: b.postfix for b in bars}
    assert "inst_acc=" in postfix["feature"]
    assert "best_head=" in postfix["self-label"]
    labelled = re.search(r"labelled=(\d+)", postfix["semi"])
    assert labelled and int(labelled.group(1)) == est.reliable_mask_.sum()
    assert "mask_rate=" in postfix["semi"]
    assert f"labelled={est.reliable_mask_.sum()}" in err


def test_bar_total_is_epochs_times_steps_and_counts_resumed_epochs(capsys, bars):
    stage = Toy()
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    run_stage(stage, opt, 5, verbose=1, start_epoch=2)
    (bar,) = bars
    assert bar.total == 5 * 4
    assert bar.n == bar.total  # 2 epochs already done count as 8 steps
    assert "toy epoch 5/5" in bar.desc
    assert capsys.readouterr().out == ""  # verbose=1: no epoch lines


def test_bar_without_steps_per_epoch(capsys, bars):
    class NoCount(Toy):
        def steps_per_epoch(self):
            raise NotImplementedError

    stage = NoCount()
    run_stage(stage, torch.optim.SGD(stage.parameters(), lr=0.05), 2, verbose=1)
    assert bars[0].total is None and bars[0].n == 8


def test_stage_progress_values_default_empty_and_postfix():
    assert Stage().progress_values() == {}

    class Shown(Toy):
        def progress_values(self):
            return {"custom": 0.123456}

    stage = Shown()
    with StageProgress(stage, 1, 0, verbose=1) as progress:
        progress.step(1.5)
        assert progress.bar.postfix == "loss=1.5, custom=0.1235"


def test_phase_logs_start_and_prints_its_end_at_verbose_2(capsys, caplog):
    caplog.set_level(logging.INFO, logger="skspice")
    with phase(1, "[x] something short"):
        pass
    assert capsys.readouterr().out == "[x] something short\n"
    with phase(2, "[x] something long"):
        pass
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[x] something long"
    assert re.fullmatch(r"\[x\] something long: done in [0-9.]+ s", out[1])
    # Logged whatever verbose is.
    with phase(0, "[x] silent"):
        pass
    assert capsys.readouterr().out == ""
    messages = [r.getMessage() for r in caplog.records]
    assert messages[-2] == "[x] silent"
    assert messages[-1].startswith("[x] silent: done in ")


def test_package_logger_has_a_null_handler_only():
    handlers = logging.getLogger("skspice").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
