"""Features of a few augmented views per sample, computed once by a frozen backbone.

When the backbone stays frozen for stages 2 and 3 (pretrained weights, stage 1
skipped; ``freeze_backbone``), every training step of those stages would push
fresh augmented views of its images through the same fixed network, twice
per image and epoch in stage 2 and three times per step in stage 3. On a
CPU that pass dominates (EfficientNet-Lite0 at 64 px: 160 s per stage-2
epoch over 10,000 images). :class:`FeatureViews` runs the backbone once over
the clean images and ``n_views`` augmented views of each, keeps the features
(float16 to halve their memory), and then stands in for both the augmenter
and the data: the stages see sample *indices* (:class:`IndexSamples`), an
identity backbone, and views drawn at random among the stored ones.

Two deviations from SPICE, for frozen backbones only: every step draws from
a finite pool of views instead of new augmentations, and by default the pool
holds weak views only (:attr:`FrozenSettings.strong_views`), so the heads
learn from features of images that look like the ones they finally label.
"""

from dataclasses import dataclass

import torch

from .defaults import EpochBudget
from .distributed import SINGLE
from .samples import Samples, whole_data_array
from .training import apply_in_batches

__all__ = ["FROZEN", "FeatureViews", "FrozenSettings", "IndexSamples"]


@dataclass(frozen=True)
class FrozenSettings:
    """Settings of the frozen-backbone path, in one place.

    Parameters
    ----------
    n_views : int
        Views of each stored kind per sample. Eight instead of four raised
        stage 3 on frozen EfficientNet-Lite0 features by 0.001-0.019 on four
        tuning sets but cost a held-out set 0.010-0.011 (same SPICE-Self heads,
        two seeds each; docs/benchmarks.md, "More stored views" and "Stage 3
        on frozen features"), so four it stays.
    strong_views : bool
        Also store strong views. Off by default: stages 2 and 3 then draw
        their "strong" view of a sample from its stored weak views (an
        independent draw), because the features a frozen ImageNet backbone
        gives strongly augmented small images are far from those of the
        clean images the heads must finally label (digits in random colours,
        EfficientNet-Lite0, seed 0: SPICE 0.534 trained on strong views,
        0.730 on weak ones; docs/benchmarks.md).
    view_dtype : torch.dtype
        Storage type of the view features.
    self_label, semi : EpochBudget
        ``"auto"`` epochs of stages 2 and 3 on stored features, where a step
        trains heads only and costs a small fraction of a backbone step.
        Stage 3 gets about 3,000,000 samples (300 epochs of 10,000 images).
        On frozen EfficientNet-Lite0 features, 1,500,000 samples against
        400,000 raised SPICE on Fashion-MNIST from 0.647 to 0.660 and in
        random colours from 0.650 to 0.665 (one H100, two seeds);
        3,000,000 against 1,500,000 left ACC about level (+0.002 on
        average over five sets, two seeds each) and raised NMI on nine of
        ten fits by up to 0.013 (2-core CPU; docs/benchmarks.md, "Stage 3
        on frozen features").
    """

    n_views: int = 4
    strong_views: bool = False
    view_dtype: torch.dtype = torch.float16
    self_label: EpochBudget = EpochBudget(30_000, 3, 100)
    semi: EpochBudget = EpochBudget(3_000_000, 10, 300)


#: The frozen-backbone settings ``SPICEClustering`` uses.
FROZEN = FrozenSettings()


class IndexSamples(Samples):
    """A data set whose sample ``i`` is the integer ``i``.

    The stages read their batches through :class:`~skspice.samples.Samples`;
    with cached features their "samples" are the indices that
    :class:`FeatureViews` looks up.

    Parameters
    ----------
    n : int
        Number of samples.

    Examples
    --------
    >>> import torch
    >>> from skspice.feature_views import IndexSamples
    >>> IndexSamples(5).fetch(torch.tensor([4, 1]), torch.device("cpu")).tolist()
    [4, 1]
    """

    def __init__(self, n):
        super().__init__(torch.arange(int(n)))

    def _convert(self, x):
        return x


class FeatureViews:
    """Frozen-backbone features of clean, weak and strong views, stored.

    Use :meth:`compute` to build one. The object then serves as the
    augmenter of stages 2 and 3 (:meth:`weak`, :meth:`strong` map a batch of
    sample indices to the features of one stored view each, drawn at random)
    over :class:`IndexSamples`, with ``torch.nn.Identity()`` as backbone.
    Without stored strong views (:attr:`FrozenSettings.strong_views`) both
    draw from the weak views, independently.

    Parameters
    ----------
    clean : torch.Tensor of shape (n, d)
        Features of the un-augmented samples (float32).
    weak, strong : torch.Tensor of shape (n_views, n, d)
        Features of the stored weak and strong views; ``strong=None``: the
        strong views are drawn from the weak ones.
    """

    def __init__(self, clean, weak, strong=None):
        strong = weak if strong is None else strong
        if weak.shape[1:] != clean.shape or strong.shape[1:] != clean.shape:
            raise ValueError(
                f"view features {tuple(weak.shape)} and {tuple(strong.shape)} do "
                f"not match the clean features {tuple(clean.shape)}."
            )
        self.clean, self.weak_views, self.strong_views = clean, weak, strong

    @classmethod
    @torch.no_grad()
    def compute(
        cls,
        backbone,
        data,
        augmenter,
        *,
        n_views,
        batch_size,
        gen,
        device,
        strong=True,
        precision=None,
        dtype=torch.float16,
        ctx=SINGLE,
    ):
        """Run ``backbone`` once over clean and ``n_views`` augmented views of
        each kind.

        Parameters
        ----------
        backbone : torch.nn.Module
            The frozen feature model (on ``device``, in evaluation mode).
        data : Samples
            The samples.
        augmenter : ImageAugmenter or TabularAugmenter
            Supplies the weak and strong views.
        n_views : int
            Views of each kind per sample.
        batch_size : int
            Samples per forward pass.
        gen : torch.Generator
            Generator of the augmentations (on ``device``).
        device : torch.device
            Where the backbone runs.
        strong : bool, default=True
            Store strong views; without them :meth:`strong` draws from the
            weak views.
        precision : torch.dtype, optional
            Autocast dtype (None: fp32).
        dtype : torch.dtype, default=torch.float16
            Storage type of the view features.
        ctx : Context, default=SINGLE
            Distributed context: each rank encodes a share, all get the whole.

        Returns
        -------
        FeatureViews
        """
        if n_views < 1:
            raise ValueError(f"n_views must be at least 1, got {n_views}.")
        backbone.eval()
        clean = apply_in_batches(backbone, data, batch_size, device, precision, ctx)
        n, d = clean.shape
        views = {}
        for kind in ("weak", "strong") if strong else ("weak",):
            out = whole_data_array((n_views, n, d), dtype)
            view = getattr(augmenter, kind)
            for v in range(n_views):
                out[v] = apply_in_batches(
                    lambda x, view=view: backbone(view(x, gen)),
                    data,
                    batch_size,
                    device,
                    precision,
                    ctx,
                ).to(dtype)
            views[kind] = out
        return cls(clean, views["weak"], views.get("strong"))

    def __len__(self):
        return int(self.clean.shape[0])

    @property
    def n_views(self):
        """Stored views of each kind per sample."""
        return int(self.weak_views.shape[0])

    @property
    def nbytes(self):
        """Bytes held by all stored features."""
        tensors = {id(t): t for t in (self.clean, self.weak_views, self.strong_views)}
        return sum(t.element_size() * t.nelement() for t in tensors.values())

    def samples(self):
        """The stages' data: :class:`IndexSamples` over these features.

        Returns
        -------
        IndexSamples
        """
        return IndexSamples(len(self))

    def _draw(self, views, idx, gen):
        pick = torch.randint(
            views.shape[0], idx.shape, generator=gen, device=gen.device
        ).cpu()
        out = views[pick, idx.cpu()]
        return out.to(idx.device, non_blocking=True).float()

    def weak(self, idx, gen):
        """Features of one stored weak view of each sample ``idx``.

        Parameters
        ----------
        idx : torch.Tensor of int64
            Sample indices (any device).
        gen : torch.Generator
            Draws the view of each sample.

        Returns
        -------
        torch.Tensor of shape (len(idx), d)
            float32, on ``idx``'s device.
        """
        return self._draw(self.weak_views, idx, gen)

    def strong(self, idx, gen):
        """Features of one stored strong view of each sample ``idx`` (one
        weak view, drawn independently of :meth:`weak`, when no strong views
        are stored).

        Parameters
        ----------
        idx : torch.Tensor of int64
            Sample indices (any device).
        gen : torch.Generator
            Draws the view of each sample.

        Returns
        -------
        torch.Tensor of shape (len(idx), d)
            float32, on ``idx``'s device.
        """
        return self._draw(self.strong_views, idx, gen)
