"""Tests for skspice.stages: MoCo, SPICE-Self and SPICE-Semi on tiny tensors."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from skspice.augment import TabularAugmenter
from skspice.pseudo_labels import prototype_pseudo_labels
from skspice.stages import (
    ClusterHeads,
    FixMatchStage,
    MoCo,
    MoCoStage,
    SelfLabelStage,
    train_self_label,
    train_semi,
)
from skspice.stages.self_label import fit_heads_to_partitions, kmeans_partitions
from skspice.stages.semi import class_thresholds

CPU = torch.device("cpu")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _backbone(d_in, d_out, seed=0, identity=False):
    """``Flatten -> Linear`` with ``out_features`` (the identity if asked)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d_in, d_out))
    if identity:
        with torch.no_grad():
            net[1].weight.copy_(torch.eye(d_out, d_in))
            net[1].bias.zero_()
    net.out_features = d_out
    return net


def _blobs(n_per=32, seed=0, sep=4.0, scale=0.5):
    """Two well-separated 2-d Gaussian blobs and their labels."""
    g = _gen(seed)
    centres = torch.tensor([[sep, sep], [-sep, -sep]])
    y = torch.arange(2).repeat_interleave(n_per)
    x = centres[y] + scale * torch.randn(2 * n_per, 2, generator=g)
    return x, y


def _tabular_augmenter(x):
    return TabularAugmenter(x.mean(0), x.std(0))


class IdentityAugmenter:
    """Weak and strong views that are the input itself (or a fixed map of it)."""

    def __init__(self, strong=None):
        self._strong = strong

    def weak(self, x, gen):
        return x.clone()

    def strong(self, x, gen):
        return x.clone() if self._strong is None else self._strong(x)

    def contrastive(self, x, gen):
        return x.clone()


def _agrees_up_to_permutation(pred, y):
    """Two-cluster accuracy 1.0 up to swapping the labels."""
    return bool((pred == y).all()) or bool((pred == 1 - y).all())


# ---------------------------------------------------------------------------
# MoCo
# ---------------------------------------------------------------------------


def _moco(d_in=4, dim=3, queue_size=5, momentum=0.9, temperature=0.2, seed=0):
    moco = MoCo(_backbone(d_in, 6, seed), dim, queue_size, momentum, temperature)
    with torch.no_grad():  # distinguishable queue rows
        moco.queue.copy_(
            torch.arange(queue_size * dim, dtype=torch.float32).view(-1, dim)
        )
    return moco


def _enqueue_one_by_one(queue, ptr, keys):
    queue, n = queue.clone(), queue.shape[0]
    for key in keys:
        queue[ptr] = key
        ptr = (ptr + 1) % n
    return queue, ptr


def test_enqueue_writes_at_pointer_wraps_and_keeps_older_entries():
    moco = _moco(queue_size=5, dim=3)
    before = moco.queue.clone()
    moco.queue_ptr.fill_(3)
    keys = -torch.arange(1, 13, dtype=torch.float32).view(4, 3)
    moco._enqueue(keys)
    # Positions 3, 4, then wrap to 0, 1; position 2 untouched.
    assert_close(moco.queue[3], keys[0])
    assert_close(moco.queue[4], keys[1])
    assert_close(moco.queue[0], keys[2])
    assert_close(moco.queue[1], keys[3])
    assert_close(moco.queue[2], before[2])
    assert int(moco.queue_ptr) == 2
    assert moco.queue_ptr.dtype == torch.long and moco.queue_ptr.dim() == 0


def test_enqueue_batch_exactly_queue_size_replaces_all_and_keeps_pointer():
    moco = _moco(queue_size=4, dim=3)
    moco.queue_ptr.fill_(1)
    keys = -torch.arange(1, 13, dtype=torch.float32).view(4, 3)
    moco._enqueue(keys)
    assert_close(moco.queue, keys.roll(1, dims=0))
    assert int(moco.queue_ptr) == 1


@pytest.mark.parametrize("start", [0, 2, 4])
@pytest.mark.parametrize("batch", [1, 3, 5, 6, 7, 12, 13])
def test_enqueue_equals_enqueuing_keys_one_by_one(start, batch):
    # Batches smaller than, equal to and larger than (even several times)
    # the queue of 5 keys: only the newest 5 keys remain, in their slots.
    moco = _moco(queue_size=5, dim=3)
    moco.queue_ptr.fill_(start)
    keys = -torch.arange(1, 3 * batch + 1, dtype=torch.float32).view(batch, 3)
    expected, expected_ptr = _enqueue_one_by_one(moco.queue, start, keys)
    moco._enqueue(keys)
    assert_close(moco.queue, expected, rtol=0, atol=0)
    assert int(moco.queue_ptr) == expected_ptr
    assert 0 <= int(moco.queue_ptr) < 5


def test_enqueue_successive_batches_equal_one_by_one():
    moco = _moco(queue_size=5, dim=3)
    queue, ptr = moco.queue.clone(), 0
    g = _gen(0)
    for batch in [2, 7, 5, 1, 11, 3]:
        keys = torch.randn(batch, 3, generator=g)
        queue, ptr = _enqueue_one_by_one(queue, ptr, keys)
        moco._enqueue(keys)
        assert_close(moco.queue, queue, rtol=0, atol=0)
        assert int(moco.queue_ptr) == ptr


def test_momentum_update_moves_key_params_exactly():
    moco = _moco(momentum=0.9)
    with torch.no_grad():
        for p in moco.encoder_q.parameters():
            p.add_(torch.randn_like(p))
    q_params = [p.detach().clone() for p in moco.encoder_q.parameters()]
    k_params = [p.detach().clone() for p in moco.encoder_k.parameters()]
    assert any(not torch.equal(q, k) for q, k in zip(q_params, k_params))
    moco.momentum_update()
    for pk, k, q in zip(moco.encoder_k.parameters(), k_params, q_params):
        assert_close(pk, 0.9 * k + 0.1 * q)
        assert not pk.requires_grad
    # The query encoder is untouched.
    for pq, q in zip(moco.encoder_q.parameters(), q_params):
        assert torch.equal(pq, q)


def test_key_encoder_starts_as_copy_without_grad():
    moco = _moco()
    for pq, pk in zip(moco.encoder_q.parameters(), moco.encoder_k.parameters()):
        assert torch.equal(pq, pk) and pq is not pk
        assert pq.requires_grad and not pk.requires_grad


def test_moco_forward_loss_gradients_and_enqueued_keys():
    moco = _moco(d_in=4, dim=3, queue_size=8)
    x_q, x_k = (
        torch.randn(4, 4, generator=_gen(1)),
        torch.randn(4, 4, generator=_gen(2)),
    )
    with torch.no_grad():
        expected_keys = F.normalize(moco.encoder_k(x_k), dim=1)
    old_queue = moco.queue.clone()
    loss = moco(x_q, x_k, _gen(3))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for p in moco.encoder_q.parameters():
        assert p.grad is not None
    assert any(p.grad.abs().sum() > 0 for p in moco.encoder_q.parameters())
    for p in moco.encoder_k.parameters():
        assert p.grad is None
    assert not moco.queue.requires_grad
    assert_close(moco.queue[:4], expected_keys)
    assert_close(moco.queue[4:], old_queue[4:])
    assert int(moco.queue_ptr) == 4


def test_moco_loss_equals_hand_computed_infonce():
    moco = _moco(d_in=4, dim=3, queue_size=6, temperature=0.3)
    with torch.no_grad():
        moco.queue.copy_(F.normalize(torch.randn(6, 3, generator=_gen(4)), dim=1))
        for p in moco.encoder_q.parameters():  # make the encoders differ
            p.add_(0.1 * torch.randn_like(p))
    x_q, x_k = (
        torch.randn(5, 4, generator=_gen(1)),
        torch.randn(5, 4, generator=_gen(2)),
    )
    with torch.no_grad():
        q = F.normalize(moco.encoder_q(x_q), dim=1)
        k = F.normalize(moco.encoder_k(x_k), dim=1)
        queue = moco.queue.clone()
    expected = 0.0
    for i in range(5):
        pos = float(q[i] @ k[i]) / 0.3
        negs = [float(q[i] @ queue[j]) / 0.3 for j in range(6)]
        expected += -pos + math.log(sum(math.exp(v) for v in [pos, *negs]))
    expected /= 5
    loss = moco(x_q, x_k, _gen(3))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def _orthogonal_to(keys, n, seed):
    """``n`` unit vectors orthogonal to every row of ``keys``."""
    basis, _ = torch.linalg.qr(keys.T)  # (dim, b), orthonormal span of keys
    v = torch.randn(n, keys.shape[1], generator=_gen(seed))
    v = v - (v @ basis) @ basis.T
    return F.normalize(v, dim=1)


def test_moco_infonce_orthogonal_negatives_vs_positives_as_negatives():
    temperature, queue_size = 0.2, 6
    moco = _moco(d_in=4, dim=8, queue_size=queue_size, temperature=temperature)
    x = torch.randn(2, 4, generator=_gen(1))
    with torch.no_grad():
        keys = F.normalize(moco.encoder_k(x), dim=1)
        moco.queue.copy_(_orthogonal_to(keys, queue_size, 5))
        assert (moco.queue @ keys.T).abs().max() < 1e-5
    loss_orth = moco(x, x, _gen(0)).item()
    # Identical encoders and views: pos = 1/T, every negative 0.
    expected = math.log(1 + queue_size * math.exp(-1 / temperature))
    assert loss_orth == pytest.approx(expected, rel=1e-4)

    with torch.no_grad():
        moco.queue.copy_(keys.repeat(queue_size // 2, 1))
    loss_same = moco(x, x, _gen(0)).item()
    assert loss_same > loss_orth + 1.0


def test_keys_shuffle_returns_keys_in_original_order():
    moco = _moco(d_in=4, dim=3, queue_size=8)
    x = torch.randn(128, 4, generator=_gen(1))  # 4 shuffled sub-batches
    gen = _gen(7)
    state = gen.get_state()
    keys, offset = moco._keys(x, gen)
    assert offset == 0
    assert not torch.equal(gen.get_state(), state)  # a permutation was drawn
    with torch.no_grad():
        expected = F.normalize(moco.encoder_k(x), dim=1)
    assert_close(keys, expected)


def test_moco_stage_steps_per_epoch_matches_batches():
    moco = _moco(d_in=4, dim=3, queue_size=8)
    data = torch.randn(23, 4, generator=_gen(0))
    stage = MoCoStage(moco, data, IdentityAugmenter(), 5, _gen(1), _gen(2), CPU)
    batches = list(stage.batches(0))
    assert len(batches) == stage.steps_per_epoch() == 4
    assert all(a.shape == b.shape == (5, 4) for a, b in batches)
    assert [p for p in stage.parameters()] == [p for p in moco.encoder_q.parameters()]


# ---------------------------------------------------------------------------
# SPICE-Self
# ---------------------------------------------------------------------------


def test_cluster_heads_forward_2d_matches_each_head():
    torch.manual_seed(0)
    heads = ClusterHeads(5, 3, n_heads=4)
    assert heads.n_heads == 4 and heads.n_clusters == 3
    f = torch.randn(7, 5, generator=_gen(1))
    out = heads(f)
    assert out.shape == (4, 7, 3)
    for i in range(4):
        assert_close(out[i], heads.head(i)(f))
    assert not torch.allclose(out[0], out[1])  # heads initialised independently


def test_cluster_heads_forward_3d_matches_each_head():
    torch.manual_seed(0)
    heads = ClusterHeads(5, 3, n_heads=4)
    f = torch.randn(4, 7, 5, generator=_gen(1))
    out = heads(f)
    assert out.shape == (4, 7, 3)
    for i in range(4):
        assert_close(out[i], heads.head(i)(f[i]))


def test_cluster_heads_head_is_a_copy():
    torch.manual_seed(0)
    heads = ClusterHeads(3, 2, n_heads=2)
    w1 = heads.w1.detach().clone()
    head = heads.head(1)
    with torch.no_grad():
        head[0].weight.add_(1.0)
    assert torch.equal(heads.w1, w1)


def _self_stage(data, clean, heads, augmenter=None, **kwargs):
    params = dict(
        pseudo_batch=data.shape[0],
        batch_size=8,
        n_repeat=1,
        center_ratio=0.5,
        gen=_gen(0),
        device_gen=_gen(1),
        device=CPU,
    )
    params.update(kwargs)
    backbone = params.pop("backbone", _backbone(clean.shape[1], clean.shape[1]))
    return SelfLabelStage(
        backbone,
        heads,
        data,
        clean,
        F.normalize(clean, dim=1),
        augmenter or IdentityAugmenter(),
        **params,
    )


def test_self_label_loss_is_mean_of_per_head_cross_entropies():
    torch.manual_seed(0)
    heads = ClusterHeads(4, 3, n_heads=3)
    x = torch.randn(10, 4)
    stage = _self_stage(x, x, heads)
    features = torch.randn(3, 6, 4, generator=_gen(1))
    labels = torch.randint(0, 3, (3, 6), generator=_gen(2))
    expected = torch.stack(
        [F.cross_entropy(heads.head(i)(features[i]), labels[i]) for i in range(3)]
    ).mean()
    assert_close(stage.loss((features, labels)), expected)


def test_head_losses_one_per_head_and_matches_hand_computation():
    torch.manual_seed(0)
    heads = ClusterHeads(2, 2, n_heads=3)
    x, _ = _blobs(10)
    stage = _self_stage(x, x, heads, eval_batch_size=7)  # several chunks
    losses = stage.head_losses()
    assert losses.shape == (3,)
    emb = F.normalize(x, dim=1)
    for i in range(3):
        with torch.no_grad():
            logits = heads.head(i)(x)
        idx, lab, _ = prototype_pseudo_labels(logits.softmax(-1), emb, 0.5)
        assert_close(losses[i], F.cross_entropy(logits[idx], lab))


def _confident_and_uniform_heads():
    """Head 0 separates the blobs confidently; head 1 outputs uniform logits."""
    heads = ClusterHeads(2, 2, n_heads=2)
    with torch.no_grad():
        for p in heads.parameters():
            p.zero_()
        heads.w1[0] = torch.tensor([[1.0, -1.0], [0.0, 0.0]])  # relu(+-x0)
        heads.w2[0] = 10 * torch.eye(2)
    return heads


def test_end_epoch_keeps_the_clearly_best_head():
    x, y = _blobs(16)
    heads = _confident_and_uniform_heads()
    stage = _self_stage(x, x, heads)
    losses = stage.head_losses()
    assert float(losses[0]) < 0.01
    assert float(losses[1]) == pytest.approx(math.log(2), rel=1e-5)
    record = stage.end_epoch(0)
    assert record == {"best_head_loss": pytest.approx(float(losses[0])), "best_head": 0}
    assert stage.best_head == 0 and stage.best_epoch == 1
    head = heads.head(0)
    head.load_state_dict(stage.best_state)
    with torch.no_grad():
        assert _agrees_up_to_permutation(head(x).argmax(1), y)


def test_end_epoch_selection_with_fixed_losses(monkeypatch):
    torch.manual_seed(0)
    heads = ClusterHeads(3, 2, n_heads=3)
    x = torch.randn(8, 3)
    stage = _self_stage(x, x, heads)
    epochs = iter(
        [
            torch.tensor([0.5, 0.2, 0.9]),
            torch.tensor([0.6, 0.7, 0.3]),  # worse than 0.2: no change
            torch.tensor([0.1, 0.4, 0.8]),
        ]
    )
    monkeypatch.setattr(stage, "head_losses", lambda: next(epochs))

    assert stage.end_epoch(0) == {"best_head_loss": pytest.approx(0.2), "best_head": 1}
    assert (stage.best_head, stage.best_epoch) == (1, 1)
    assert stage.best_loss == pytest.approx(0.2)
    saved = {k: v.clone() for k, v in heads.head(1).state_dict().items()}
    for k, v in stage.best_state.items():
        assert torch.equal(v, saved[k])

    with torch.no_grad():  # "training" changes every head
        for p in heads.parameters():
            p.add_(1.0)
    assert stage.end_epoch(1) == {"best_head_loss": pytest.approx(0.3), "best_head": 2}
    assert (stage.best_head, stage.best_epoch) == (1, 1)
    assert stage.best_loss == pytest.approx(0.2)
    for k, v in stage.best_state.items():  # a copy: not moved by training
        assert torch.equal(v, saved[k])

    assert stage.end_epoch(2)["best_head"] == 0
    assert (stage.best_head, stage.best_epoch) == (0, 3)
    assert stage.best_loss == pytest.approx(0.1)
    for k, v in heads.head(0).state_dict().items():
        assert torch.equal(stage.best_state[k], v)


def test_self_label_state_dict_round_trip():
    torch.manual_seed(0)
    x, _ = _blobs(8)
    stage = _self_stage(x, x, _confident_and_uniform_heads())
    empty = stage.state_dict()
    assert empty["best_head"] == -1 and empty["best_state"] == {}
    stage.end_epoch(4)
    other = _self_stage(x, x, ClusterHeads(2, 2, n_heads=2))
    other.load_state_dict(stage.state_dict())
    assert (other.best_head, other.best_epoch) == (0, 5)
    assert other.best_loss == stage.best_loss
    assert_close(other.heads(x), stage.heads(x))
    fresh = _self_stage(x, x, ClusterHeads(2, 2, n_heads=2))
    fresh.load_state_dict(empty)
    assert fresh.best_head is None and fresh.best_state is None


def test_self_label_batches_count_shapes_and_frozen_backbone_mode():
    torch.manual_seed(0)
    k, h, d = 3, 2, 4
    data = torch.randn(40, d, generator=_gen(0))
    backbone = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d))
    backbone.train()
    heads = ClusterHeads(d, k, n_heads=h)
    with torch.no_grad():
        clean = backbone.eval()(data)
    backbone.train()
    stage = _self_stage(
        data,
        clean,
        heads,
        backbone=backbone,
        pseudo_batch=16,
        batch_size=4,
        n_repeat=2,
    )
    # 2 rounds of 16 samples; 5 labels per cluster = 15 -> 3 batches, twice.
    assert stage.steps_per_epoch() == 2 * 3 * 2
    n = 0
    for features, labels in stage.batches(0):
        n += 1
        assert not backbone.training and heads.training
        assert features.shape == (h, 4, d) and labels.shape == (h, 4)
        assert labels.min() >= 0 and labels.max() < k
        # The features are backbone outputs (eval mode) of training rows.
        dist = torch.cdist(
            features.reshape(-1, d), clean, compute_mode="donot_use_mm_for_euclid_dist"
        )
        assert dist.min(1).values.max() < 1e-5
    assert n == stage.steps_per_epoch()


def _train_self_label(backbone, x, epochs=4, **kwargs):
    with torch.no_grad():
        clean = backbone(x)
    return train_self_label(
        backbone,
        x,
        clean,
        _tabular_augmenter(x),
        n_clusters=2,
        n_heads=3,
        epochs=epochs,
        lr=1e-2,
        pseudo_batch=x.shape[0],
        batch_size=16,
        n_repeat=2,
        center_ratio=0.5,
        gen=_gen(0),
        device_gen=_gen(1),
        device=CPU,
        **kwargs,
    )


def test_train_self_label_separates_two_blobs():
    torch.manual_seed(0)
    x, y = _blobs(32)
    backbone = _backbone(2, 2, identity=True)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    history = []
    head, info = _train_self_label(backbone, x, history=history)
    assert isinstance(head, nn.Sequential)
    assert len(history) == 4 and all(r["stage"] == "self-label" for r in history)
    assert 0 <= info["head"] < 3 and 1 <= info["epoch"] <= 4
    # The kept loss is the lowest of the per-epoch bests.
    assert info["loss"] == pytest.approx(min(r["best_head_loss"] for r in history))
    assert history[info["epoch"] - 1]["best_head"] == info["head"]
    with torch.no_grad():
        pred = head(backbone(x)).argmax(1)
    assert _agrees_up_to_permutation(pred, y)
    # The frozen backbone's weights did not move; it is trainable again.
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.requires_grad for p in backbone.parameters())


def test_kmeans_partitions_one_per_head_and_seeded():
    torch.manual_seed(0)
    x, y = _blobs(32)
    space = F.normalize(x, dim=1)
    parts = kmeans_partitions(space, 2, 3, random_state=0)
    assert parts.shape == (3, 64) and parts.dtype.kind == "i"
    # Two well-separated blobs: every start finds them.
    assert all(_agrees_up_to_permutation(torch.as_tensor(p), y) for p in parts)
    assert (kmeans_partitions(space, 2, 3, random_state=0) == parts).all()
    # Four clusters of two blobs are ambiguous: the starts differ.
    many = kmeans_partitions(space, 4, 6, random_state=0)
    assert len({tuple(p) for p in many}) > 1


def test_fit_heads_to_partitions_learns_each_heads_own_partition():
    torch.manual_seed(0)
    x, y = _blobs(32)
    heads = ClusterHeads(2, 2, n_heads=2)
    parts = torch.stack([y, 1 - y])  # head 1 learns the swapped labels
    agree = fit_heads_to_partitions(
        heads, x, parts, steps=200, batch_size=32, lr=1e-2, gen=_gen(0), device=CPU
    )
    assert agree.shape == (2,) and (agree == 1).all()
    with torch.no_grad():
        top = heads(x).argmax(-1)
    assert torch.equal(top, parts)


def test_train_self_label_kmeans_start():
    torch.manual_seed(0)
    x, y = _blobs(32)
    backbone = _backbone(2, 2, identity=True)
    head, info = _train_self_label(backbone, x, epochs=1, head_init="kmeans")
    assert 0 <= info["init_agreement"] <= 1 and info["init_agreement"] > 0.9
    with torch.no_grad():
        assert _agrees_up_to_permutation(head(x).argmax(1), y)
    _, random_info = _train_self_label(backbone, x, epochs=1)
    assert "init_agreement" not in random_info
    with pytest.raises(ValueError, match="head_init"):
        _train_self_label(backbone, x, epochs=1, head_init="zeros")


def test_train_self_label_restores_partially_frozen_backbone():
    torch.manual_seed(0)
    x, _ = _blobs(16)
    backbone = _backbone(2, 2, identity=True)
    backbone[1].bias.requires_grad_(False)
    _train_self_label(backbone, x, epochs=1)
    assert backbone[1].weight.requires_grad
    assert not backbone[1].bias.requires_grad


def test_train_self_label_unfreezes_backbone_when_training_fails():
    torch.manual_seed(0)
    x, _ = _blobs(16)
    backbone = _backbone(2, 2, identity=True)

    class Broken(IdentityAugmenter):
        def strong(self, x, gen):
            raise RuntimeError("boom")

    with torch.no_grad():
        clean = backbone(x)
    with pytest.raises(RuntimeError, match="boom"):
        train_self_label(
            backbone,
            x,
            clean,
            Broken(),
            n_clusters=2,
            n_heads=2,
            epochs=1,
            lr=1e-2,
            pseudo_batch=32,
            batch_size=8,
            n_repeat=1,
            center_ratio=0.5,
            gen=_gen(0),
            device_gen=_gen(1),
            device=CPU,
        )
    assert all(p.requires_grad for p in backbone.parameters())


# ---------------------------------------------------------------------------
# SPICE-Semi
# ---------------------------------------------------------------------------


def _semi_stage(network, data, labels, augmenter=None, **kwargs):
    params = dict(
        batch_size=4,
        unlabeled_ratio=2,
        threshold=0.9,
        lambda_u=1.0,
        ema_decay=0.999,
        gen=_gen(0),
        device_gen=_gen(1),
        device=CPU,
    )
    params.update(kwargs)
    return FixMatchStage(
        network, data, labels, augmenter or IdentityAugmenter(), **params
    )


def _ce(logits, target):
    return -(logits[target] - torch.logsumexp(logits, 0))


def _identity_linear(d=2):
    net = nn.Linear(d, d, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(d))
    return net


def test_fixmatch_loss_masks_low_confidence_and_matches_hand_computation():
    net = _identity_linear()  # logits are the inputs themselves
    data = torch.zeros(10, 2)
    x_l = torch.tensor([[0.3, -0.4], [1.0, 0.5]])
    y_l = torch.tensor([1, 0])
    # Weak-view confidences: 0.953 (class 0), ~0.8 (class 0, the threshold),
    # 0.55, 0.924 (class 1), 0.5.
    x_w = torch.tensor([[3.0, 0.0], [1.3863, 0.0], [0.2, 0.0], [-2.5, 0.0], [0.0, 0]])
    x_s = torch.randn(5, 2, generator=_gen(3))
    with torch.no_grad():
        probs = net(torch.cat([x_l, x_w, x_s]))[2:7].softmax(-1)
    threshold = float(probs[1].max())  # sample 1 sits exactly at the threshold
    lambda_u = 2.0
    stage = _semi_stage(net, data, [0] * 10, threshold=threshold, lambda_u=lambda_u)

    x_s = x_s.clone().requires_grad_(True)
    x_w = x_w.clone().requires_grad_(True)
    loss = stage.loss((x_l, y_l, x_w, x_s, torch.arange(5)))
    masked_in, pseudo = [0, 1, 3], {0: 0, 1: 0, 3: 1}
    with torch.no_grad():
        loss_x = (_ce(x_l[0], 1) + _ce(x_l[1], 0)) / 2
        loss_u = sum(_ce(x_s[i], pseudo[i]) for i in masked_in) / 5
    assert_close(loss.detach(), loss_x + lambda_u * loss_u)
    assert stage.end_epoch(0)["mask_rate"] == pytest.approx(3 / 5)

    loss.backward()
    # Only confident samples' strong views get gradient ...
    assert (x_s.grad[[2, 4]] == 0).all()
    assert (x_s.grad[masked_in].abs().sum(1) > 0).all()
    # ... and no gradient reaches the weak views (they only pick targets).
    assert (x_w.grad == 0).all()

    # A second batch where no sample is confident: only the labelled loss.
    loss2 = stage.loss((x_l, y_l, x_w.detach() * 0, x_s.detach(), torch.arange(5)))
    assert_close(loss2.detach(), loss_x)
    assert stage.end_epoch(0)["mask_rate"] == pytest.approx((3 / 5 + 0) / 2)


def test_fixmatch_low_confidence_strong_views_do_not_change_loss():
    net = _identity_linear()
    x_l, y_l = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    x_w = torch.tensor([[4.0, 0.0], [0.1, 0.0]])  # confident, not confident
    x_s = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    stage = _semi_stage(net, torch.zeros(4, 2), [0] * 4, threshold=0.9)
    idx_u = torch.arange(2)
    base = stage.loss((x_l, y_l, x_w, x_s, idx_u))
    moved_out = stage.loss(
        (x_l, y_l, x_w, x_s + torch.tensor([[0.0, 0.0], [5.0, 0.0]]), idx_u)
    )
    moved_in = stage.loss(
        (x_l, y_l, x_w, x_s + torch.tensor([[5.0, 0.0], [0.0, 0.0]]), idx_u)
    )
    assert_close(moved_out, base)
    assert moved_in.item() < base.item() - 0.1


def _bn_network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize("ema_decay", [0.999, 0.3])
def test_fixmatch_ema_warmup_decay_and_buffers(ema_decay):
    net = _bn_network()
    stage = _semi_stage(net, torch.randn(8, 3), [0, 1] * 4, ema_decay=ema_decay)
    assert not stage.ema.training
    assert all(not p.requires_grad for p in stage.ema.parameters())
    expected = [p.detach().clone() for p in stage.ema.parameters()]
    g = _gen(5)
    for t in range(1, 5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=g))
        net.train()
        net(torch.randn(6, 3, generator=g))  # moves the BatchNorm statistics
        stage.after_step()
        assert stage.n_updates == t
        decay = min(ema_decay, (1 + t) / (10 + t))
        expected = [
            decay * e + (1 - decay) * p.detach()
            for e, p in zip(expected, net.parameters())
        ]
        for pe, e in zip(stage.ema.parameters(), expected):
            assert_close(pe, e)
        for (name, be), b in zip(stage.ema.named_buffers(), net.buffers()):
            assert torch.equal(be, b), name
            assert be.data_ptr() != b.data_ptr()
    assert int(stage.ema[1].num_batches_tracked) == 4


def test_fixmatch_empty_labelled_set_raises():
    with pytest.raises(ValueError, match="empty"):
        _semi_stage(_identity_linear(), torch.zeros(5, 2), [-1] * 5)


def _labels_with(n, labelled):
    labels = torch.full((n,), -1)
    labels[labelled] = torch.arange(len(labelled)) % 2
    return labels.numpy()


def test_fixmatch_labelled_batches_cycle_over_labelled_set():
    labelled = [3, 5, 8, 11, 17, 19]
    stage = _semi_stage(
        _identity_linear(),
        torch.zeros(20, 2),
        _labels_with(20, labelled),
        batch_size=6,
        unlabeled_ratio=3,  # 2 labelled samples per step
    )
    assert stage.labeled_batch == 2
    batches = stage._labeled_batches()
    for _ in range(5):  # 5 passes of 3 batches: each a permutation of the set
        one_pass = torch.cat([next(batches) for _ in range(3)])
        assert sorted(one_pass.tolist()) == labelled


def test_fixmatch_labelled_batches_uneven_and_small_sets():
    # 5 labelled, 2 per batch: no repeats within a permutation, all seen.
    labelled = [0, 4, 6, 7, 9]
    stage = _semi_stage(
        _identity_linear(),
        torch.zeros(10, 2),
        _labels_with(10, labelled),
        batch_size=4,
        unlabeled_ratio=2,
    )
    batches = stage._labeled_batches()
    seen = set()
    for _ in range(10):
        cycle = torch.cat([next(batches) for _ in range(2)]).tolist()
        assert len(set(cycle)) == 4 and set(cycle) <= set(labelled)
        seen.update(cycle)
    assert seen == set(labelled)

    # Fewer labelled samples than a labelled batch: every batch holds all.
    stage = _semi_stage(
        _identity_linear(),
        torch.zeros(12, 2),
        _labels_with(12, [2, 9]),
        batch_size=10,
        unlabeled_ratio=2,
    )
    batches = stage._labeled_batches()
    for batch in itertools.islice(batches, 5):
        assert batch.numel() == 5 and set(batch.tolist()) == {2, 9}


def test_fixmatch_balanced_batches_draw_clusters_equally():
    # 90 labelled samples of cluster 0, 10 of cluster 1: balanced batches
    # draw both clusters about equally often and use only labelled samples.
    labels = torch.full((150,), -1)
    labels[:90] = 0
    labels[90:100] = 1
    stage = _semi_stage(
        _identity_linear(),
        torch.zeros(150, 2),
        labels.numpy(),
        batch_size=64,
        unlabeled_ratio=2,
        balanced_batches=True,
    )
    drawn = torch.cat(list(itertools.islice(stage._labeled_batches(), 100)))
    assert drawn.numel() == 100 * 32
    assert drawn.max() < 100  # only labelled samples
    share = (labels[drawn] == 1).float().mean()
    assert 0.45 < share < 0.55  # 10 samples weigh as much as 90
    assert drawn[labels[drawn] == 0].unique().numel() == 90
    # Without balancing, cluster 1 is drawn at its share of the set.
    stage.balanced_batches = False
    drawn = torch.cat(list(itertools.islice(stage._labeled_batches(), 100)))
    assert 0.05 < (labels[drawn] == 1).float().mean() < 0.15


def test_semi_settings_fallback_floor():
    from skspice.stages import SEMI, SemiSettings

    assert SEMI.fallback_floor(70_000, 10) == 70  # 1 % of an even cluster
    assert SEMI.fallback_floor(50, 10) == 1  # at least one sample
    assert SemiSettings(fallback_share=0.05).fallback_floor(70_000, 10) == 350


def test_fixmatch_batches_use_only_labelled_samples_with_their_labels():
    n = 24
    data = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 2)  # row i = i
    labelled = [1, 2, 7, 10, 15, 23]
    labels = _labels_with(n, labelled)
    stage = _semi_stage(
        _identity_linear(), data, labels, batch_size=8, unlabeled_ratio=4
    )
    assert stage.steps_per_epoch() == 3
    seen = []
    for epoch in range(2):
        batches = list(stage.batches(epoch))
        assert len(batches) == stage.steps_per_epoch()
        for x_l, y_l, x_w, x_s, idx_u in batches:
            assert x_l.shape == (2, 2) and x_w.shape == x_s.shape == (8, 2)
            # The unlabelled indices name the rows of the views.
            assert torch.equal(x_w[:, 0].long(), idx_u)
            idx = x_l[:, 0].long()
            assert (y_l >= 0).all()
            assert torch.equal(y_l, torch.as_tensor(labels)[idx])
            seen.extend(idx.tolist())
    assert sorted(seen) == sorted(labelled * 2)


def test_train_semi_fits_reliable_labels():
    torch.manual_seed(0)
    x, y = _blobs(32, seed=1)
    labels = torch.full((64,), -1)
    keep = torch.randperm(64, generator=_gen(2))[:24]
    labels[keep] = y[keep]
    network = nn.Sequential(_backbone(2, 4, seed=3), nn.Linear(4, 2))
    history = []
    model = train_semi(
        network,
        x,
        labels.numpy(),
        _tabular_augmenter(x),
        epochs=8,
        lr=0.05,
        batch_size=16,
        unlabeled_ratio=2,
        threshold=0.9,
        lambda_u=1.0,
        ema_decay=0.9,
        gen=_gen(4),
        device_gen=_gen(5),
        device=CPU,
        history=history,
    )
    assert model is not network and not model.training
    assert len(history) == 8
    assert all(0.0 <= r["mask_rate"] <= 1.0 for r in history)
    with torch.no_grad():
        pred = model(x).argmax(1)
    assert torch.equal(pred[keep], y[keep])
    assert torch.equal(pred, y)


def test_reset_head_reinitialises_only_the_head_from_gen():
    from skspice.stages.semi import reset_head

    def network():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Linear(3, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        )

    a, b, c = network(), network(), network()
    before = [p.clone() for p in a.parameters()]
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    reset_head(a[-1], _gen(7))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    reset_head(b[-1], _gen(7))
    reset_head(c[-1], _gen(8))
    assert_close(a[0].weight, before[0])  # the backbone is kept
    for pa, pb, pc, p0 in zip(
        a[-1].parameters(), b[-1].parameters(), c[-1].parameters(), before[2:]
    ):
        assert torch.equal(pa, pb)  # same generator, same head
        assert not torch.equal(pa, pc) and not torch.equal(pa, p0)


def test_class_thresholds_follow_flexmatch_mapping():
    confident = torch.tensor([0, 0, 0, 0, 1, 1, -1, 2])
    thr = class_thresholds(confident, 4, 0.9)
    beta = torch.tensor([1.0, 0.5, 0.25, 0.0])
    assert_close(thr, 0.9 * beta / (2 - beta))
    assert thr[0] == pytest.approx(0.9)  # the best-learned cluster keeps it
    assert thr[3] == 0  # a cluster never predicted confidently takes any
    # No confident prediction yet: FixMatch's one threshold everywhere.
    assert_close(
        class_thresholds(torch.full((5,), -1), 3, 0.95), torch.full((3,), 0.95)
    )


def test_fixmatch_adaptive_thresholds_mask_and_record():
    net = _identity_linear()  # logits are the inputs themselves
    # Cluster 0 was learned by three samples, cluster 1 by one: its threshold
    # is 0.9 * (1/3) / (2 - 1/3) = 0.18.
    confident = torch.tensor([0, 0, 0, 1, -1, -1])
    stage = _semi_stage(net, torch.zeros(6, 2), [0, 1] * 3, confident=confident)
    x_l, y_l = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    # Weak views of samples 4 and 5: class 1 at 0.6 confidence, class 0 at
    # 0.6; then sample 0 confidently class 1.
    x_w = torch.tensor([[0.0, 0.405], [0.405, 0.0], [0.0, 4.0]])
    x_s = torch.zeros(3, 2)
    stage.loss((x_l, y_l, x_w, x_s, torch.tensor([4, 5, 0])))
    # Class 1's lower threshold lets sample 4 in; class 0's 0.9 keeps 5 out.
    assert stage.end_epoch(0)["mask_rate"] == pytest.approx(2 / 3)
    # Only the confident prediction (>= 0.9) is recorded; the caller's
    # tensor is left as it was.
    assert stage.confident.tolist() == [1, 0, 0, 1, -1, -1]
    assert confident.tolist() == [0, 0, 0, 1, -1, -1]
    state = stage.state_dict()
    fresh = _semi_stage(net, torch.zeros(6, 2), [0, 1] * 3, confident=confident)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.confident, stage.confident)


def test_fixmatch_confident_shape_is_checked():
    with pytest.raises(ValueError, match="confident has shape"):
        _semi_stage(
            _identity_linear(), torch.zeros(6, 2), [0, 1] * 3, confident=torch.zeros(5)
        )


def test_estimator_starts_adaptive_thresholds_from_spice_self(monkeypatch):
    import dataclasses

    import numpy as np

    import skspice.estimator as estimator_module
    from skspice import SPICEClustering
    from skspice.stages import semi

    seen = {}
    real = estimator_module.train_semi

    def spy(network, data, labels, augmenter, **kwargs):
        seen["confident"] = kwargs["confident"]
        return real(network, data, labels, augmenter, **kwargs)

    monkeypatch.setattr(estimator_module, "train_semi", spy)
    monkeypatch.setattr(
        semi, "SEMI", dataclasses.replace(semi.SEMI, adaptive_threshold=True)
    )
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, size=(40, 4)) for c in (-3, 0, 3)])
    est = SPICEClustering(
        n_clusters=3,
        feature_epochs=2,
        self_epochs=2,
        semi_epochs=1,
        batch_size=32,
        fixmatch_threshold=0.6,
        random_state=0,
    ).fit(X.astype(np.float32))
    confident = seen["confident"]
    assert confident.shape == (len(X),)
    # Recorded where SPICE-Self's confidence reaches the threshold, with its
    # predicted cluster; -1 elsewhere.
    self_labels = torch.as_tensor(est.self_labels_)
    sure = confident >= 0
    assert sure.any()
    assert torch.equal(confident[sure], self_labels[sure])
    assert est.labels_.shape == (len(X),)
