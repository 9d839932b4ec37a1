"""Tests for skspice.training: schedule, loop, mini-batches, batched apply."""

import math

import pytest
import torch
from torch import nn

from skspice.training import (
    Stage,
    apply_in_batches,
    cosine_schedule,
    iterate_minibatches,
    run_stage,
)

# ---------------------------------------------------------------------------
# cosine_schedule
# ---------------------------------------------------------------------------


def _lrs(total, steps, **kwargs):
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=2.0)
    sched = cosine_schedule(opt, total, **kwargs)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_cosine_schedule_start_middle_end():
    lrs = _lrs(10, 12, end_factor=0.1)
    assert lrs[0] == pytest.approx(2.0)
    # Halfway: factor = 0.1 + 0.9 * 0.5.
    assert lrs[5] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert lrs[10] == pytest.approx(0.2)
    # Stays at the end value after the schedule.
    assert lrs[12] == pytest.approx(0.2)
    # Monotone decreasing.
    assert all(a >= b - 1e-12 for a, b in zip(lrs, lrs[1:]))


def test_cosine_schedule_default_end_is_zero():
    lrs = _lrs(4, 4)
    expected = [2.0 * 0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(5)]
    assert lrs == pytest.approx(expected)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_cosine_schedule_warmup():
    lrs = _lrs(10, 10, warmup_steps=4, end_factor=0.0)
    # Linear warm-up (step + 1) / warmup, reaching the full rate at step 3.
    assert lrs[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    # Then cosine over the remaining 6 steps.
    assert lrs[4] == pytest.approx(2.0)
    assert lrs[7] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 3 / 6)))
    assert lrs[10] == pytest.approx(0.0, abs=1e-12)


def test_cosine_schedule_zero_total_steps():
    lrs = _lrs(0, 2, end_factor=0.3)
    assert lrs[0] == pytest.approx(2.0)
    assert lrs[1] == pytest.approx(0.6)


# ---------------------------------------------------------------------------
# run_stage with a toy stage
# ---------------------------------------------------------------------------


class LinearRegression(Stage):
    """Fit y = X w + b with mini-batch SGD."""

    name = "toy"

    def __init__(self, n=64, batch_size=16, nan_at_epoch=None):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=gen)
        self.y = self.x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3
        torch.manual_seed(0)
        self.model = nn.Linear(3, 1)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(1)
        self.nan_at_epoch = nan_at_epoch
        self.epochs_seen = []
        self.after_steps = 0
        self.ended = []
        self.current_epoch = None

    def parameters(self):
        return self.model.parameters()

    def steps_per_epoch(self):
        return self.x.shape[0] // self.batch_size

    def batches(self, epoch):
        self.epochs_seen.append(epoch)
        self.current_epoch = epoch
        yield from iterate_minibatches(self.x.shape[0], self.batch_size, self.gen)

    def loss(self, idx):
        pred = self.model(self.x[idx]).squeeze(1)
        loss = ((pred - self.y[idx]) ** 2).mean()
        if self.current_epoch == self.nan_at_epoch:
            loss = loss * float("nan")
        return loss

    def after_step(self):
        self.after_steps += 1

    def end_epoch(self, epoch):
        self.ended.append(epoch)
        return {"extra": epoch * 10}


def test_run_stage_decreases_loss_and_fills_history():
    stage = LinearRegression()
    opt = torch.optim.SGD(stage.parameters(), lr=0.1)
    history = run_stage(stage, opt, 6)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert stage.epochs_seen == [0, 1, 2, 3, 4, 5]
    assert stage.ended == [0, 1, 2, 3, 4, 5]
    assert stage.after_steps == 6 * 4
    for r in history:
        assert r["stage"] == "toy"
        assert set(r) == {"stage", "epoch", "loss", "seconds", "extra"}
        assert r["seconds"] >= 0 and math.isfinite(r["loss"])
    assert history[2]["extra"] == 20
    losses = [r["loss"] for r in history]
    assert losses[-1] < 0.1 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    with torch.no_grad():
        torch.testing.assert_close(
            stage.model.weight.flatten(),
            torch.tensor([1.5, -2.0, 0.5]),
            atol=0.25,
            rtol=0,
        )


def test_run_stage_loss_is_mean_over_steps():
    stage = LinearRegression(n=32, batch_size=32)
    opt = torch.optim.SGD(stage.parameters(), lr=0.0)  # no learning
    with torch.no_grad():
        expected = ((stage.model(stage.x).squeeze(1) - stage.y) ** 2).mean().item()
    history = run_stage(stage, opt, 1)
    assert history[0]["loss"] == pytest.approx(expected, rel=1e-5)


def test_run_stage_appends_to_given_history_and_respects_start_epoch():
    stage = LinearRegression()
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    history = [{"stage": "earlier", "epoch": 1, "loss": 0.0, "seconds": 0.0}]
    seen = []
    out = run_stage(
        stage, opt, 5, history=history, start_epoch=3, on_epoch_end=seen.append
    )
    assert out is history
    assert [r["epoch"] for r in history] == [1, 4, 5]
    assert stage.epochs_seen == [3, 4]
    assert seen == [3, 4]


def test_run_stage_nothing_to_do_when_start_equals_total():
    stage = LinearRegression()
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    assert run_stage(stage, opt, 3, start_epoch=3) == []
    assert stage.epochs_seen == []


def test_run_stage_nan_loss_raises_with_stage_and_epoch():
    stage = LinearRegression(nan_at_epoch=1)
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    history = []
    with pytest.raises(FloatingPointError, match=r"^toy: .*nan at epoch 2, step 1"):
        run_stage(stage, opt, 4, history=history)
    assert [r["epoch"] for r in history] == [1]  # first epoch completed
    # No update was made with the non-finite loss.
    assert all(torch.isfinite(p).all() for p in stage.model.parameters())


def test_run_stage_inf_loss_raises():
    class InfStage(LinearRegression):
        def loss(self, idx):
            return super().loss(idx) + float("inf")

    stage = InfStage()
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    with pytest.raises(FloatingPointError, match="epoch 1"):
        run_stage(stage, opt, 2)


def test_run_stage_steps_scheduler_every_step():
    stage = LinearRegression()
    opt = torch.optim.SGD(stage.parameters(), lr=0.1)
    sched = cosine_schedule(opt, 3 * stage.steps_per_epoch(), end_factor=0.25)
    run_stage(stage, opt, 3, scheduler=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_run_stage_verbose_prints_one_line_per_epoch(capsys):
    stage = LinearRegression()
    opt = torch.optim.SGD(stage.parameters(), lr=0.05)
    run_stage(stage, opt, 2, verbose=2)  # 1: the bar alone (tests/test_progress.py)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[toy] epoch 1/2 loss=")
    assert "extra=10" in lines[1]

    run_stage(LinearRegression(), opt, 1, verbose=0)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------
# iterate_minibatches and apply_in_batches
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n,bs", [(10, 3), (12, 4), (7, 7), (5, 1)])
def test_iterate_minibatches_drop_last(n, bs):
    batches = list(iterate_minibatches(n, bs, torch.Generator().manual_seed(0)))
    assert len(batches) == n // bs
    assert all(b.dtype == torch.int64 and len(b) == bs for b in batches)
    flat = torch.cat(batches)
    assert flat.unique().numel() == flat.numel()  # no repeats
    assert flat.min() >= 0 and flat.max() < n


@pytest.mark.parametrize("n,bs", [(10, 3), (12, 4), (7, 20)])
def test_iterate_minibatches_keep_last_covers_each_index_once(n, bs):
    batches = list(
        iterate_minibatches(n, bs, torch.Generator().manual_seed(0), drop_last=False)
    )
    assert sorted(torch.cat(batches).tolist()) == list(range(n))
    assert len(batches) == math.ceil(n / min(bs, n))


def test_iterate_minibatches_batch_larger_than_n_gives_one_full_batch():
    batches = list(iterate_minibatches(5, 64, torch.Generator().manual_seed(0)))
    assert len(batches) == 1
    assert sorted(batches[0].tolist()) == [0, 1, 2, 3, 4]


def test_iterate_minibatches_shuffles_deterministically():
    def run(seed):
        return torch.cat(
            list(iterate_minibatches(20, 5, torch.Generator().manual_seed(seed)))
        )

    torch.testing.assert_close(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    assert not torch.equal(run(3), torch.arange(20))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 10, 100])
def test_apply_in_batches_equals_one_shot(batch_size):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.Tanh()).eval()
    data = torch.randn(10, 4)
    out = apply_in_batches(net, data, batch_size, torch.device("cpu"))
    assert out.shape == (10, 5)
    assert not out.requires_grad  # runs under no_grad
    torch.testing.assert_close(out, net(data).detach())


def test_apply_in_batches_passes_chunks_in_order():
    sizes = []

    def fn(x):
        sizes.append(x.shape[0])
        return x * 2

    data = torch.arange(7.0)
    out = apply_in_batches(fn, data, 3, "cpu")
    assert sizes == [3, 3, 1]
    torch.testing.assert_close(out, data * 2)
