"""Stored view features of a frozen backbone (skspice.feature_views), and the
estimator's frozen-backbone path that trains on them."""

import numpy as np
import pytest
import torch
from params import quick_params
from torch import nn

from skspice import SPICEClustering
from skspice.backbones import SmallCNN
from skspice.datasets import load_digits_images
from skspice.feature_views import FeatureViews, IndexSamples
from skspice.samples import Samples


class _ShiftAugmenter:
    """Weak views add +k, strong views -k, for the k-th call of each kind:
    every stored view is distinguishable and predictable."""

    def __init__(self):
        self.calls = {"weak": 0, "strong": 0}

    def _view(self, kind, x, sign):
        self.calls[kind] += 1
        return x + sign * self.calls[kind]

    def weak(self, x, gen):
        return self._view("weak", x, 1.0)

    def strong(self, x, gen):
        return self._view("strong", x, -1.0)


def _compute(data, backbone=None, augmenter=None, **kwargs):
    """``FeatureViews.compute`` on the CPU; one batch per view by default."""
    kwargs.setdefault("batch_size", len(data))
    return FeatureViews.compute(
        nn.Identity() if backbone is None else backbone,
        data,
        _ShiftAugmenter() if augmenter is None else augmenter,
        gen=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        **kwargs,
    )


def _views(n=6, d=3, n_views=2):
    data = Samples(torch.arange(n * d, dtype=torch.float32).view(n, d))
    backbone = nn.Linear(d, d, bias=False)
    with torch.no_grad():
        backbone.weight.copy_(torch.eye(d) * 2)  # features = 2 x input
    # one batch per view: view v is shifted by v + 1
    views = _compute(data, backbone, n_views=n_views, dtype=torch.float32)
    return data, views


def test_index_samples_hand_out_indices():
    s = IndexSamples(5)
    assert len(s) == 5 and s.sample_shape == ()
    out = s.fetch(torch.tensor([3, 0, 4]), torch.device("cpu"))
    assert out.dtype == torch.int64 and out.tolist() == [3, 0, 4]


def test_compute_stores_the_backbone_output_of_every_view():
    data, views = _views()
    x = data.raw
    assert torch.equal(views.clean, 2 * x)
    assert views.n_views == 2 and len(views) == 6
    for v in range(2):
        assert torch.equal(views.weak_views[v], 2 * (x + v + 1))
        assert torch.equal(views.strong_views[v], 2 * (x - v - 1))
    assert views.nbytes == 5 * 6 * 3 * 4


def test_draws_pick_one_stored_view_per_sample():
    _, views = _views(n=50, n_views=2)
    idx = torch.arange(50)
    gen = torch.Generator().manual_seed(1)
    weak = views.weak(idx, gen)
    # each row is the row of view 0 or of view 1, and both occur
    from_0 = (weak == views.weak_views[0]).all(1)
    from_1 = (weak == views.weak_views[1]).all(1)
    assert bool((from_0 ^ from_1).all())
    assert 0 < int(from_0.sum()) < 50
    strong = views.strong(idx[:4], torch.Generator().manual_seed(1))
    assert strong.shape == (4, 3) and strong.dtype == torch.float32
    again = views.weak(idx, torch.Generator().manual_seed(1))
    assert torch.equal(weak, again)  # the generator decides


def test_without_strong_views_both_kinds_draw_from_the_weak_ones():
    data = Samples(torch.arange(40 * 3, dtype=torch.float32).view(40, 3))
    aug = _ShiftAugmenter()
    views = _compute(data, augmenter=aug, n_views=3, strong=False, dtype=torch.float32)
    assert aug.calls == {"weak": 3, "strong": 0}  # no strong pass at all
    assert views.strong_views is views.weak_views
    assert views.nbytes == 4 * 40 * 3 * 4  # clean + 3 weak views, counted once
    idx = torch.arange(40)
    weak = views.weak(idx, torch.Generator().manual_seed(0))
    strong = views.strong(idx, torch.Generator().manual_seed(5))
    shifts = (strong - data.raw)[:, 0]
    assert set(shifts.tolist()) <= {1.0, 2.0, 3.0}  # weak shifts only
    assert not torch.equal(weak, strong)  # drawn independently


def test_float16_storage_and_bad_arguments():
    data = Samples(torch.rand(4, 3))
    views = _compute(data, n_views=1, batch_size=2)
    assert views.weak_views.dtype == torch.float16
    assert views.weak(torch.arange(4), torch.Generator()).dtype == torch.float32
    with pytest.raises(ValueError, match="n_views"):
        _compute(data, n_views=0, batch_size=2)
    with pytest.raises(ValueError, match="do not match"):
        FeatureViews(torch.zeros(4, 3), torch.zeros(1, 4, 3), torch.zeros(1, 5, 3))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits_images()
    return X[:120], y[:120]


def _backbone_state(est):
    return {k: v.clone() for k, v in est.network_[0].backbone.state_dict().items()}


@pytest.mark.parametrize("semi_epochs", [0, 1])
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_frozen_fit_keeps_the_given_backbone(digits, semi_epochs):
    X, _ = digits
    backbone = SmallCNN(in_channels=1)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    params = quick_params(feature_epochs=0, self_epochs=2, semi_epochs=semi_epochs)
    est = SPICEClustering(n_clusters=4, backbone=backbone, **params).fit(X)
    assert est.frozen_backbone_
    after = _backbone_state(est)
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the composed network predicts exactly what fit found
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    stages = {r["stage"] for r in est.history_}
    assert ("semi" in stages) == (semi_epochs > 0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_freeze_backbone_false_fine_tunes_in_stage_3(digits):
    X, _ = digits
    backbone = SmallCNN(in_channels=1)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    params = quick_params(feature_epochs=0, self_epochs=1, semi_epochs=1)
    est = SPICEClustering(
        n_clusters=4, backbone=backbone, freeze_backbone=False, **params
    ).fit(X)
    assert not est.frozen_backbone_
    after = _backbone_state(est)
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_freeze_backbone_true_after_stage_1(digits):
    X, _ = digits
    params = quick_params(feature_epochs=1, self_epochs=1, semi_epochs=1)
    est = SPICEClustering(n_clusters=4, freeze_backbone=True, **params).fit(X)
    assert est.frozen_backbone_
    frozen = _backbone_state(est)
    est2 = SPICEClustering(n_clusters=4, freeze_backbone=True, **params)
    est2.set_params(semi_epochs=0).fit(X)
    # stage 3 did not move the backbone: it equals the one after stage 1 only
    assert all(torch.equal(frozen[k], v) for k, v in _backbone_state(est2).items())
    assert SPICEClustering(**quick_params()).fit(X).frozen_backbone_ is False
