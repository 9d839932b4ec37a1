"""What ``"auto"`` means: backbone, batch size and epochs, by device and data.

One table per device kind (a :class:`Regime`), chosen by where ``fit`` runs:

* **CPU** (:data:`CPU`): sized for a 2-core laptop CPU and measured there
  (docs/benchmarks.md): small CNNs, about 10 MoCo epochs on 70,000 images,
  a whole default fit of Fashion-MNIST 70k in 29 minutes on the slower of
  the two 2-core hosts measured (docs/benchmarks.md).
* **CUDA** (:data:`CUDA`): the paper's regime, a ResNet-18 with a CIFAR stem
  (3x3 stride-1 stem, no max-pool) for 17-64 px images and a ResNet-34 above,
  with epoch budgets ten times larger, planned to fit Fashion-MNIST's 70,000
  images in about 8 minutes on one H100. Measured for that case only
  (7.7 minutes, ACC 0.659 +- 0.010 over two seeds; docs/benchmarks.md,
  "GPU"); see the user guide's table.

An epoch budget is a number of samples a stage visits, turned into epochs by
the data-set size and clipped to a range: small data sets get many epochs,
large ones at least a few.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CPU",
    "CUDA",
    "EpochBudget",
    "Regime",
    "auto_backbone",
    "auto_batch_size",
    "regime_for",
]


@dataclass(frozen=True)
class EpochBudget:
    """Epochs of one stage: about ``samples`` samples, within ``[lo, hi]``.

    Parameters
    ----------
    samples : int
        Samples the stage visits in all.
    lo, hi : int
        Fewest and most epochs.
    """

    samples: int
    lo: int
    hi: int

    def epochs(self, n_samples):
        """Epochs for a data set of ``n_samples``.

        Parameters
        ----------
        n_samples : int

        Returns
        -------
        int

        Examples
        --------
        >>> from skspice.defaults import EpochBudget
        >>> EpochBudget(300_000, 10, 300).epochs(70_000)
        10
        >>> EpochBudget(300_000, 10, 300).epochs(1_797)
        167
        """
        return int(np.clip(round(self.samples / max(1, n_samples)), self.lo, self.hi))


@dataclass(frozen=True)
class Regime:
    """The ``"auto"`` settings for one kind of device.

    Parameters
    ----------
    name : str
        ``"cpu"`` or ``"cuda"``.
    feature, self_label, semi : EpochBudget
        Epochs of stage 1 (MoCo), stage 2 (SPICE-Self) and stage 3
        (SPICE-Semi).
    large_image_self_label : EpochBudget
        Epochs of stage 2 for images over 64 px (see :meth:`budget`).
    large_image_semi : EpochBudget
        Epochs of stage 3 for images over 64 px (see :meth:`budget`).
    batch_size : int
        Largest ``"auto"`` batch size (stage-1 images per step, stage-3
        unlabelled images per step is twice that).
    large_image_batch_size : int
        Largest ``"auto"`` batch size for images over 64 px.
    mid_backbone, large_backbone : str
        ``"auto"`` backbone for 17-64 px images and above 64 px.
    """

    name: str
    feature: EpochBudget
    self_label: EpochBudget
    semi: EpochBudget
    large_image_self_label: EpochBudget
    large_image_semi: EpochBudget
    batch_size: int
    large_image_batch_size: int
    mid_backbone: str
    large_backbone: str

    def budget(self, stage, profile):
        """The budget of ``stage`` for data that look like ``profile``.

        Parameters
        ----------
        stage : {"self_label", "semi"}
            Stage 2 (SPICE-Self) or stage 3 (SPICE-Semi).
        profile : InputProfile

        Returns
        -------
        EpochBudget
            ``large_image_<stage>`` for images over 64 px, where a CPU step
            costs ~50x more than at 28 px; else the attribute ``stage``.
        """
        if stage not in ("self_label", "semi"):
            raise ValueError(f"stage must be 'self_label' or 'semi', got {stage!r}.")
        if _is_large_image(profile):
            return getattr(self, f"large_image_{stage}")
        return getattr(self, stage)


def _is_large_image(profile):
    """Whether ``profile`` is an image over 64 px, where every regime
    switches to its large-image backbone, batch size and stage budgets.

    Parameters
    ----------
    profile : InputProfile

    Returns
    -------
    bool
    """
    return profile.kind == "image" and profile.image_size > 64


#: The CPU regime (measured on 2 cores; docs/benchmarks.md).
CPU = Regime(
    name="cpu",
    feature=EpochBudget(300_000, 10, 300),
    # About what 3 epochs of 70,000 images visit, where more stage-2 epochs
    # bought nothing; 10,000 images get 20 epochs instead of 3, which on
    # Fashion-MNIST 10k raised SPICE-Self and filled the clusters that had
    # no reliable sample (docs/benchmarks.md, "Stage-2 epochs by size").
    self_label=EpochBudget(200_000, 3, 50),
    # SPICE-Semi keeps lifting accuracy for several epochs: on 70,000
    # Fashion-MNIST images a stage-3 minute buys more than a stage-1 one
    # (docs/benchmarks.md, "Where a CPU-minute goes"). Above 64 px, where a
    # CPU step costs ~50x more and nothing was measured, it stays short.
    semi=EpochBudget(400_000, 1, 50),
    large_image_self_label=EpochBudget(20_000, 3, 50),
    large_image_semi=EpochBudget(50_000, 1, 50),
    batch_size=256,
    # A 224 px ResNet-18 holds ~26 MiB of training activations per image:
    # 32 keep a stage-3 step (64 weak + 64 strong + 9 labelled views) near
    # 3.5 GiB of RAM, where 256 would need 28 GiB.
    large_image_batch_size=32,
    mid_backbone="strided_cnn",
    large_backbone="resnet18",
)

#: The CUDA regime (the paper's models; measured on one H100 for 28 px,
#: 70,000 images only: docs/benchmarks.md, "GPU").
CUDA = Regime(
    name="cuda",
    feature=EpochBudget(2_000_000, 20, 500),
    self_label=EpochBudget(300_000, 5, 100),
    semi=EpochBudget(500_000, 2, 100),
    large_image_self_label=EpochBudget(300_000, 5, 100),
    large_image_semi=EpochBudget(500_000, 2, 100),
    batch_size=256,
    large_image_batch_size=256,
    mid_backbone="cifar_resnet18",
    large_backbone="resnet34",
)


def regime_for(device):
    """The regime of ``device`` (:data:`CUDA` for CUDA devices, else :data:`CPU`).

    Parameters
    ----------
    device : torch.device or str

    Returns
    -------
    Regime
    """
    kind = getattr(device, "type", str(device).split(":")[0])
    return CUDA if kind == "cuda" else CPU


def auto_backbone(profile, device="cpu"):
    """The backbone name ``backbone="auto"`` stands for.

    Parameters
    ----------
    profile : InputProfile
        What one sample looks like.
    device : torch.device or str, default="cpu"
        Where it trains.

    Returns
    -------
    str
        ``"mlp"`` for tabular rows, ``"small_cnn"`` up to 16 px, the
        regime's mid-size backbone up to 64 px, its large one above.
    """
    if profile.kind == "tabular":
        return "mlp"
    if profile.image_size <= 16:
        return "small_cnn"
    regime = regime_for(device)
    return regime.large_backbone if _is_large_image(profile) else regime.mid_backbone


def auto_batch_size(n_samples, profile, device="cpu"):
    """The batch size ``batch_size="auto"`` stands for.

    The regime's batch size (its large-image one above 64 px), or for small
    data sets the largest power of two up to ``n_samples / 4`` (at least 16),
    so that an epoch has several steps.

    Parameters
    ----------
    n_samples : int
    profile : InputProfile
    device : torch.device or str, default="cpu"

    Returns
    -------
    int
    """
    regime = regime_for(device)
    cap = (
        regime.large_image_batch_size if _is_large_image(profile) else regime.batch_size
    )
    small = 2 ** np.floor(np.log2(max(n_samples // 4, 16)))
    return int(min(cap, small, n_samples))
