"""The scikit-learn estimator: :class:`SPICEClustering`."""

import contextlib
import copy
import hashlib
import os
import time
import warnings
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .augment import make_augmenter
from .backbones import (
    BACKBONES,
    TIMM_PREFIX,
    Resize,
    Standardize,
    build_backbone,
    load_torchvision_weights,
    load_weights,
)
from .contrast import background_contrast, contrast_map_reason
from .defaults import auto_batch_size, regime_for
from .distributed import context_from_env, local_rank
from .feature_views import FROZEN, FeatureViews
from .inputs import InputProfile, as_image_item, as_model_input, check_profile
from .precision import PRECISIONS, precision_name, resolve_precision
from .progress import message, phase
from .pseudo_labels import (
    knn_indices,
    neighbor_smoothed,
    reliability_scores,
    reliable_pseudo_labels,
    spectral_coordinates,
    whitened,
)
from .samples import (
    DatasetSamples,
    Samples,
    inference_batch_size,
    release_freed_memory,
    whole_data_array,
)
from .stages import self_label as self_stage
from .stages import semi as semi_stage
from .stages import train_feature_model, train_self_label, train_semi
from .training import Checkpointer, apply_in_batches

__all__ = ["SPICEClustering"]

#: Per-cluster counts of the reliable-label selection (``reliable_counts_``).
_RELIABLE_COUNTS = ("passed", "added", "kept")


class _FeatureModel(nn.Module):
    """Resizing (for pretrained weights), standardisation, then the backbone."""

    def __init__(self, standardize, backbone, resize=None):
        super().__init__()
        self.resize = resize if resize is not None else nn.Identity()
        self.standardize = standardize
        self.backbone = backbone
        self.out_features = backbone.out_features

    def forward(self, x):
        return self.backbone(self.standardize(self.resize(x)))


def _is_table(X):
    """Whether ``X`` is 2-D rows (array, DataFrame or nested list)."""
    if hasattr(X, "columns"):
        return True
    if isinstance(X, (list, tuple)):
        try:
            return np.ndim(X) == 2
        except ValueError:  # ragged nesting: let as_model_input explain
            return False
    return getattr(X, "ndim", None) == 2


def _resolve_device(device, for_inference=False):
    """Turn the ``device`` parameter into a ``torch.device``.

    In ``fit`` an unavailable CUDA device is an error. For inference (a model
    fitted on a GPU and loaded where there is none) it falls back to the CPU
    with a warning.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        if for_inference:
            warnings.warn(
                f"device={device!r} is not available here; predicting on the CPU.",
                UserWarning,
                stacklevel=3,
            )
            return torch.device("cpu")
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='auto' or 'cpu'."
        )
    return dev


def _is_dataset(X):
    """Whether ``X`` is a torch data set (read lazily, item by item)."""
    return isinstance(X, (torch.utils.data.Dataset, torch.utils.data.IterableDataset))


def _fingerprint(data, params):
    """Hash of the training data and the parameters that shape a fit."""
    h = hashlib.sha256()
    if isinstance(data, torch.Tensor):
        h.update(data.contiguous().numpy())  # hashed in place, no byte copy
        h.update(str(tuple(data.shape)).encode())
    else:  # a data set on disk: its size, type and 64 evenly spaced items
        n = len(data)
        h.update(f"{type(data).__qualname__}:{n}".encode())
        for i in np.unique(np.linspace(0, n - 1, 64).astype(int)):
            h.update(as_image_item(data[int(i)]).tobytes())
    for key in sorted(params):
        if key in ("verbose", "checkpoint_dir"):
            continue
        value = params[key]
        if isinstance(value, nn.Module):
            h.update(repr(value).encode())
            for t in value.state_dict().values():
                h.update(t.detach().cpu().contiguous().numpy())
        else:
            h.update(f"{key}={value!r}".encode())
    return h.hexdigest()[:20]


@contextlib.contextmanager
def _timed(seconds, name):
    """Record the wall time of a block under ``seconds[name]``."""
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start


def _probabilities(network, data, device, batch_size, precision, ctx):
    """Softmax cluster probabilities of ``network`` on ``data``, on the CPU."""
    network.eval()
    return apply_in_batches(
        lambda x: network(x).float().softmax(-1),
        data,
        batch_size,
        device,
        precision,
        ctx,
    )


def _normalized(features, batch_size=65536):
    """L2-normalised rows, batch by batch into a new whole-data array (which
    is memory-mapped when large, like ``features``)."""
    out = whole_data_array(tuple(features.shape), features.dtype)
    for start in range(0, features.shape[0], batch_size):
        out[start : start + batch_size] = F.normalize(
            features[start : start + batch_size], dim=1
        )
    return out


@contextlib.contextmanager
def _cudnn_autotune(device):
    """Let cuDNN pick the fastest kernels for the fixed batch shapes of a fit."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class SPICEClustering(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """SPICE deep clustering: contrastive features, prototype pseudo-labels,
    then semi-supervised fine-tuning on reliable pseudo-labels.

    Implements Niu, Shan & Wang, "SPICE: Semantic Pseudo-labeling for Image
    Clustering", IEEE TIP 2022, in three stages:

    1. **Feature model** (``feature_epochs``): the backbone learns features by
       MoCo v2 contrastive learning on augmented views.
    2. **SPICE-Self** (``self_epochs``): the backbone is frozen and
       ``n_heads`` clustering heads learn from prototype pseudo-labels; the
       head with the lowest pseudo-label loss is kept (no ground truth).
    3. **SPICE-Semi** (``semi_epochs``): samples that are confident and agree
       with their feature-space neighbours become a labelled set, and the
       backbone and head are fine-tuned jointly with FixMatch.

    Parameters
    ----------
    n_clusters : int, default=10
        Number of clusters.
    backbone : str, torch.nn.Module or (class, dict), default="auto"
        Feature extractor. ``"auto"`` picks by input and device
        (:mod:`skspice.defaults`): an MLP for tabular rows, ``"small_cnn"``
        up to 16 px; on the CPU ``"strided_cnn"`` up to 64 px and
        torchvision's ``"resnet18"`` above; on a CUDA GPU the paper's
        ``"cifar_resnet18"`` (ResNet-18 with a CIFAR stem) up to 64 px and
        ``"resnet34"`` above. Also accepted: ``"small_resnet"``,
        ``"cifar_resnet34"``, any torchvision classification model name
        (``"resnet50"``); ``"timm/<name>"`` for any
        timm model, its classifier removed (``"timm/efficientnet_b0"``, or
        with a pretrained tag ``"timm/resnet18.a1_in1k"``; needs
        ``pip install "skspice[timm]"``); a module mapping
        ``(batch, C, H, W)`` images in [0, 1] (after standardisation) to
        ``(batch, d)`` features, deep-copied and never trained in place; or a
        ``(class, kwargs)`` pair, built as ``class(**kwargs)`` in ``fit``.
    backbone_weights : str, os.PathLike or bool, default=None
        Pretrained weights for the backbone (``None`` or ``False``: none):

        * a torchvision weights name of a torchvision ``backbone``
          (``"DEFAULT"``, ``"IMAGENET1K_V1"``, ``"IMAGENET1K_V2"``, ...),
          loaded through torchvision's weights API from the torch hub cache
          (``torch.hub.get_dir()``), downloading only if the file is not
          there; the weights then bring their own input handling: their
          normalisation replaces the data's, grayscale is repeated to three
          channels and images are resized to ``input_size``;
        * ``True``: timm's own pretrained weights of a ``"timm/..."``
          backbone (those of the name's tag, else timm's default), loaded by
          timm from the Hugging Face hub cache
          (``huggingface_hub.constants.HF_HUB_CACHE``), downloading only if
          the file is not there (without internet the error names the folder
          where the file can be placed by hand); the same input handling,
          with the normalisation and input size of timm's data config;
        * a local file: a state dict or a training checkpoint (``state_dict``
          nesting and the prefixes ``module.``, ``encoder_q.``,
          ``backbone.``, ``model.`` are handled, so MoCo and SPICE
          checkpoints load), read with ``weights_only=True``; e.g. what
          :meth:`save_backbone` wrote. For a torchvision or timm backbone, a
          state dict of that model (its classifier is ignored).

        With weights, ``feature_epochs="auto"`` skips stage 1 and stage 2
        trains on the pretrained features.
    input_size : int or "auto", default="auto"
        Smaller image side the backbone sees; images are resized in the
        model, after augmentation. ``"auto"``: the input size of the weights
        given by name or ``True`` in ``backbone_weights`` (torchvision's crop
        size, e.g. 224, or timm's ``input_size``) when the images are
        smaller, else the images' own size.
    image_shape : tuple of int, default=None
        ``(H, W)`` or ``(H, W, C)``: read 2-D input rows as flattened images.
        With ``None``, 2-D input is tabular and 3-D/4-D input is images.
    contrast_normalization : bool or "auto", default="auto"
        Replace every image by its contrast map: each pixel's colour distance
        from the image's own background colour (the median of its border),
        scaled to the image's strongest contrast (:mod:`skspice.contrast`).
        The map is one channel and is the same whatever the foreground and
        background colours, brightness and contrast polarity, so clusters
        follow shapes, not colours (on digits drawn in random colours:
        ACC 0.97 with it, near chance without). White-on-black images such as
        digits keep their look. ``"auto"`` uses it for data sets drawn on
        flat backgrounds (glyphs, scans, renders; decided by
        :func:`~skspice.contrast.has_flat_background`), pretrained backbones
        included, and for colour images without a flat frame whose colours
        are unrelated to what they show (textures or shaded scans in random
        colours; decided by :func:`~skspice.contrast.colors_are_nuisance`).
        It keeps the colours of photographs, whose colours follow their
        content; they get MoCo v2's colour distortions instead. Applied in
        ``fit``, ``predict`` and ``transform`` alike.
    horizontal_flip : bool or "auto", default="auto"
        Mirror images in the augmentations of all stages. ``"auto"`` flips
        colour photographs only (colour images without contrast
        normalisation): mirroring is harmless for photographs but changes
        meaning for handwriting and other symbols (on 28 px digits it cut
        accuracy from 0.95 to 0.79). Set ``True`` for data whose classes are
        mirror-symmetric, such as clothing or objects.
    feature_epochs : int or "auto", default="auto"
        MoCo epochs; 0 skips stage 1. ``"auto"`` is 0 with
        ``backbone_weights``, else, on the CPU, visits about 300,000 samples
        (between 10 and 300 epochs: 167 for 1,797 digits, 10 for 70,000
        images) and on a CUDA GPU about 2,000,000 (between 20 and 500
        epochs: 29 for 70,000 images). The table of every ``"auto"`` value
        is in :mod:`skspice.defaults` and the user guide.
    self_epochs : int or "auto", default="auto"
        SPICE-Self epochs (at least 1: stage 2 always runs). ``"auto"`` visits
        about 200,000 samples on the CPU for images up to 64 px (20,000 above;
        between 3 and 50 epochs: 50 for 1,797 digits, 20 for 10,000 images,
        3 for 70,000) and 300,000 on a GPU (between 5 and 100); with a
        frozen backbone (``freeze_backbone``) about 30,000 (between 3 and
        100).
    semi_epochs : int or "auto", default="auto"
        SPICE-Semi epochs; 0 skips stage 3. ``"auto"`` visits about 400,000
        samples on the CPU for images up to 64 px as the model sees them
        (50,000 above; between 1 and 50 epochs) and 500,000 on a GPU
        (between 2 and 100); with a frozen backbone (``freeze_backbone``),
        where a step trains the head alone, about 3,000,000 (between 10 and
        300 epochs).
    freeze_backbone : bool or "auto", default="auto"
        Keep the backbone frozen in stage 3 too, so that SPICE-Semi trains
        the clustering head only. The backbone then runs once over the
        clean images and a few stored augmented views of each
        (:mod:`skspice.feature_views`), and stages 2 and 3 train on those
        features, with the ``"auto"`` epochs of
        :data:`~skspice.feature_views.FROZEN`. ``"auto"`` freezes it when
        stage 1 did not run (pretrained weights, or ``feature_epochs=0``):
        features learned elsewhere (ImageNet) are kept as they are, since
        stage 3's fine-tuning, whose settings suit a backbone trained on
        this data, damaged them (docs/benchmarks.md). ``False`` fine-tunes
        backbone and head jointly, as the paper does.
    batch_size : int or "auto", default="auto"
        Images per optimiser step in stage 1 and unlabelled images per step in
        stage 3 is twice that; stage 2 uses batches of 128 pseudo-labelled
        samples. ``"auto"`` uses 256 (on the CPU 32 for images over 64 px as
        the model sees them, after any resizing to ``input_size``, whose
        activations are large), or for small data sets the largest
        power of two up to ``n_samples / 4`` (at least 16), so that an epoch
        has several steps.
    n_heads : int, default=10
        Clustering heads trained together in stage 2.
    head_init : {"auto", "random", "kmeans"}, default="auto"
        How stage 2's heads start. ``"random"`` is the reference's random
        initialisation. ``"kmeans"`` first fits each head to its own KMeans
        partition of the prototype space (one k-means++ start per head, 100 Adam
        steps). ``"auto"`` uses ``"kmeans"`` when the backbone stays frozen
        (``frozen_backbone_``: pretrained or exported weights) and ``"random"``
        when stage 1 trained it. From random weights most heads on frozen
        features settled in a partition that splits one class and merges two,
        and a fit depended on one head escaping it: on backbones exported from
        two digits fits (six seeds each, neighbour-smoothed prototypes) 6 of 12
        fits ended at 0.84-0.90 with ``"random"`` and none with ``"kmeans"``
        (mean ACC 0.927 -> 0.978). On frozen EfficientNet-Lite0 features (two
        seeds) ``"kmeans"`` raised SPICE on digits in random colours from 0.774
        to 0.807 and on shaded random-colour Fashion-MNIST from 0.482 to 0.555,
        and left Fashion-MNIST and its random-colour version where they were.
        Its risk: heads stay near their KMeans partitions, whose pseudo-label
        loss is low, so the label-free head choice favours them even when a
        random head found a better partition (one Fashion-MNIST colour fit fell
        to 0.63). On digits with stage 1 it gave 0.977 and 0.955 against 0.972
        and 0.969, so a trained backbone keeps random heads. The resolved value
        is ``head_init_``. See docs/benchmarks.md.
    feature_lr : float, default=0.06
        Stage-1 SGD learning rate.
    self_lr : float, default=0.001
        Stage-2 Adam learning rate.
    prototype_space : {"auto", "embedding", "smoothed", "whitened", "spectral"}, \
            default="auto"
        Where SPICE-Self builds its cluster prototypes and picks the samples
        nearest to them. ``"embedding"`` is the reference: the L2-normalised
        features, where a prototype is a centroid. ``"smoothed"`` averages
        each sample's embedding with its 10 nearest neighbours' first
        (:func:`~skspice.pseudo_labels.neighbor_smoothed`), which damps the
        nuisance variation that features learned on other images keep
        (lighting, size, colour). ``"whitened"`` projects the embeddings on
        their 64 leading principal components, scales each to about unit
        variance (shrunk by the variance of component ``2 * n_clusters``, so
        that classes already far apart stay apart;
        :func:`~skspice.pseudo_labels.whitened`) and then smooths them as
        ``"smoothed"`` does: features learned elsewhere spend most of their
        variance on a few nuisance directions, which centroids would follow.
        ``"auto"`` uses ``"whitened"`` when the backbone stays frozen
        (``frozen_backbone_``) and its weights did not come from a local file:
        published weights (a torchvision weights name, timm's ``True``), or a
        module passed as ``backbone`` with its weights in it. On frozen
        EfficientNet-Lite0 features (two seeds) it raised SPICE over
        ``"smoothed"`` from 0.700 to 0.735 on Fashion-MNIST, 0.687 to 0.750 in
        random colours, 0.774 to 0.861 on digits in random colours and 0.548
        to 0.581 on shaded, noisy colour images. A weights file is usually a
        checkpoint trained on the data at hand (``save_backbone``, MoCo and
        SPICE checkpoints), whose neighbours already agree; there smoothing
        destabilised SPICE-Self (backbones exported from two digits fits, six
        seeds each: 6 of 12 fits ended at 0.84-0.90 instead of 0.97-0.98,
        against 1 of 12 with the embedding), so ``"auto"`` keeps the
        embedding there. ``"spectral"`` uses the spectral embedding of the
        10-nearest-neighbour graph of the whitened embeddings
        (:func:`~skspice.pseudo_labels.spectral_coordinates`), where a class
        that forms a curved or elongated region becomes a compact blob.
        When the backbone is trained on the data (by stage 1, fine-tuned in
        stage 3), ``"auto"`` uses ``"spectral"`` from 1,000 samples per
        cluster on and the embedding below: on Fashion-MNIST 70k (two seeds)
        it raised SPICE from 0.670 to 0.723, but on digits (180 images per
        cluster) it cost SPICE-Self 0.10-0.19, and on frozen ImageNet
        features it hurt shapes and shaded colour images. See
        docs/benchmarks.md.
    semi_lr : float, default=0.03
        Stage-3 SGD learning rate.
    temperature : float, default=0.2
        MoCo temperature.
    confidence_threshold : float, default=0.99
        Stage 3: minimum top probability of a reliable sample.
    consistency_ratio : float, default=0.9
        Stage 3: minimum fraction of neighbours that share a reliable sample's
        cluster.
    n_neighbors : int or "auto", default="auto"
        Stage 3: neighbours checked for consistency; ``"auto"`` uses
        ``min(100, n_samples // (4 * n_clusters))`` (at least 5).
    fixmatch_threshold : float, default=0.95
        Stage 3: confidence above which a weak view's prediction becomes a
        target for its strong view.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU. The data set is
        kept in its input dtype (uint8 images stay uint8) and converted batch
        by batch on the device; on a GPU it is copied there once when it
        takes at most a quarter of the free memory, else every batch travels
        through pinned memory.
    num_workers : int, default=0
        Worker processes that read the items of a
        :class:`torch.utils.data.Dataset` passed as ``X`` (through a
        :class:`~torch.utils.data.DataLoader`) while the current batch trains;
        0 reads them in this process. Arrays and PIL lists are in memory
        already and ignore it.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Float type of the forward passes (:mod:`skspice.precision`): weights,
        optimiser state and results stay fp32, matrix products and
        convolutions run under ``torch.autocast`` in the lower precision
        (fp16 with a gradient scaler). ``"auto"`` is bf16 on CUDA GPUs that
        support it and fp32 elsewhere; ``"bf16"`` on a CPU with native bf16
        instructions is faster per step, but it is not the CPU default (see
        the user guide's table).
    checkpoint_dir : str or os.PathLike, default=None
        Folder for epoch-end checkpoints of every stage (written atomically).
        A ``fit`` with the same data and parameters finds the checkpoint of an
        interrupted run there and resumes where it stopped, with the same seed
        and random-generator states, so on the CPU the result equals an
        uninterrupted run. The file is deleted when ``fit`` finishes.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, augmentation and sampling. An int gives
        identical results on the CPU.
    verbose : int, default=0
        What ``fit`` shows while it runs:

        * ``0``: nothing;
        * ``1``: one progress bar per stage on stderr (a widget in Jupyter,
          through ``tqdm.auto``) over all the stage's optimiser steps,
          updated every step, with the epoch's running ``loss`` and the
          stage's own values: ``inst_acc`` (MoCo's instance-discrimination
          accuracy) in stage 1, ``best_head`` and ``best_loss`` in stage 2,
          ``labelled`` (reliable-set size) and ``mask_rate`` (share of
          FixMatch targets) in stage 3; and one line on stdout when a long
          step outside training (features, kNN, reliable labels) starts;
        * ``2`` and more: also one line per epoch (its ``history_`` values)
          and per finished step.

        Whatever ``verbose`` is, the same messages are logged at INFO level
        on the ``skspice`` loggers (``logging.getLogger("skspice")``), which
        have no handler of their own: e.g.
        ``logging.basicConfig(level=logging.INFO)`` shows them.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample (final model).
    self_labels_ : ndarray of shape (n_samples,)
        SPICE-Self clusters of the training samples (stage 2 alone).
    reliable_labels_ : ndarray of shape (n_samples,)
        Stage-3 labelled set: the reliable pseudo-label, ``-1`` elsewhere.
        All ``-1`` when stage 3 is skipped.
    reliable_mask_ : ndarray of bool, shape (n_samples,)
        ``reliable_labels_ >= 0``.
    reliable_counts_ : dict of ndarray of shape (n_clusters,)
        How the stage-3 labelled set was formed, per cluster: ``"passed"``
        (samples that passed the confidence and neighbour test), ``"added"``
        (samples the fallback added to a cluster with almost no reliable
        sample) and ``"kept"`` (samples in the labelled set: all of them
        by default, where stage 3 balances clusters in its batches). All
        zero when stage 3 is skipped. Also in ``history_``, as
        ``reliable_passed``, ``reliable_added`` and ``reliable_kept`` of
        stage 3's first epoch.
    reliability_ : ndarray of shape (n_samples,)
        How far each training sample's final cluster can be trusted, in
        [0, 1]: its top probability times the fraction of its
        ``n_neighbors`` nearest neighbours in ``embedding_`` that share its
        cluster (:func:`~skspice.pseudo_labels.reliability_scores`). Keep,
        e.g., ``labels_[reliability_ > 0.9]`` for the assignments you trust.
    embedding_ : ndarray of shape (n_samples, n_features_out)
        L2-normalised stage-1 features of the training samples (what stage 2
        and the reliable-label search use).
    selected_head_ : dict
        Index, epoch and pseudo-label loss of the head kept by stage 2
        (``head``, ``epoch``, ``loss``), and with ``head_init="kmeans"``
        its agreement with its KMeans partition after the warm start
        (``init_agreement``).
    frozen_backbone_ : bool
        Whether the backbone stayed frozen through stage 3 (the resolved
        ``freeze_backbone``).
    prototype_space_ : str
        The space SPICE-Self's prototypes were built in: the resolved
        ``prototype_space``, or ``"embedding"`` where ``"spectral"`` had too
        few samples for a graph.
    head_init_ : str
        How stage 2's heads started: the resolved ``head_init``
        (``"kmeans"`` or ``"random"``).
    history_ : list of dict
        One record per epoch of every stage: ``stage``, ``epoch``, ``loss``,
        ``seconds`` and stage-specific values.
    stage_seconds_ : dict
        Wall time of each stage.
    network_ : torch.nn.Module
        The fitted network (standardisation, backbone, head), on the CPU. It
        takes contrast maps when ``contrast_normalization_`` is true.
    contrast_normalization_ : bool
        Whether images were replaced by their contrast maps (the resolved
        ``contrast_normalization``).
    horizontal_flip_ : bool
        Whether the augmentations mirrored images (the resolved
        ``horizontal_flip``).
    precision_ : str
        The precision training ran in: ``"fp32"``, ``"bf16"`` or ``"fp16"``
        (the resolved ``precision``).
    world_size_ : int
        Processes that trained together: 1, or under ``torchrun`` (any
        launcher that sets up ``torch.distributed``) the process group's
        size. Every rank ends with the same fitted attributes.
    n_features_in_ : int
        Values per sample seen in ``fit`` (pixels times channels for images).
    n_features_out_ : int
        Width of the features returned by :meth:`transform`.

    See Also
    --------
    sklearn.cluster.KMeans : Clustering on raw features.

    Notes
    -----
    Deliberate deviations from the reference code are documented in
    :mod:`skspice.stages`: logits with a single softmax in stage 2, a frozen
    backbone kept in evaluation mode, a label-free head choice, and stage 3
    fine-tuning the stage-1 backbone instead of a new WideResNet.

    Examples
    --------
    A few epochs on 100 digits, to show the API (the defaults train for
    minutes and cluster far better):

    >>> from skspice import SPICEClustering
    >>> from skspice.datasets import load_digits_images
    >>> X, y = load_digits_images()
    >>> model = SPICEClustering(
    ...     n_clusters=10, feature_epochs=1, self_epochs=1, semi_epochs=1,
    ...     batch_size=32, random_state=0,
    ... )
    >>> labels = model.fit_predict(X[:100])
    >>> labels.shape
    (100,)
    >>> model.embedding_.shape
    (100, 128)
    >>> [record["stage"] for record in model.history_]
    ['feature', 'self-label', 'semi']
    """

    _parameter_constraints = {
        "n_clusters": [Interval(Integral, 2, None, closed="left")],
        "backbone": [str, nn.Module, tuple],
        "backbone_weights": [str, os.PathLike, "boolean", None],
        "image_shape": [tuple, list, None],
        "input_size": [
            Interval(Integral, 8, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "contrast_normalization": ["boolean", StrOptions({"auto"})],
        "horizontal_flip": ["boolean", StrOptions({"auto"})],
        "feature_epochs": [
            Interval(Integral, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "self_epochs": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "semi_epochs": [
            Interval(Integral, 0, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "freeze_backbone": ["boolean", StrOptions({"auto"})],
        "batch_size": [
            Interval(Integral, 2, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "head_init": [StrOptions({"auto", "kmeans", "random"})],
        "feature_lr": [Interval(Real, 0, None, closed="neither")],
        "self_lr": [Interval(Real, 0, None, closed="neither")],
        "prototype_space": [
            StrOptions({"auto", "embedding", "smoothed", "spectral", "whitened"})
        ],
        "semi_lr": [Interval(Real, 0, None, closed="neither")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "confidence_threshold": [Interval(Real, 0, 1, closed="left")],
        "consistency_ratio": [Interval(Real, 0, 1, closed="both")],
        "n_neighbors": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],
        "fixmatch_threshold": [Interval(Real, 0, 1, closed="both")],
        "device": [str, torch.device],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "precision": [StrOptions(set(PRECISIONS))],
        "checkpoint_dir": [str, os.PathLike, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=10,
        *,
        backbone="auto",
        backbone_weights=None,
        input_size="auto",
        image_shape=None,
        contrast_normalization="auto",
        horizontal_flip="auto",
        feature_epochs="auto",
        self_epochs="auto",
        semi_epochs="auto",
        freeze_backbone="auto",
        batch_size="auto",
        n_heads=10,
        head_init="auto",
        feature_lr=0.06,
        self_lr=0.001,
        prototype_space="auto",
        semi_lr=0.03,
        temperature=0.2,
        confidence_threshold=0.99,
        consistency_ratio=0.9,
        n_neighbors="auto",
        fixmatch_threshold=0.95,
        device="auto",
        num_workers=0,
        precision="auto",
        checkpoint_dir=None,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.input_size = input_size
        self.image_shape = image_shape
        self.contrast_normalization = contrast_normalization
        self.horizontal_flip = horizontal_flip
        self.feature_epochs = feature_epochs
        self.self_epochs = self_epochs
        self.semi_epochs = semi_epochs
        self.freeze_backbone = freeze_backbone
        self.batch_size = batch_size
        self.n_heads = n_heads
        self.head_init = head_init
        self.feature_lr = feature_lr
        self.self_lr = self_lr
        self.prototype_space = prototype_space
        self.semi_lr = semi_lr
        self.temperature = temperature
        self.confidence_threshold = confidence_threshold
        self.consistency_ratio = consistency_ratio
        self.n_neighbors = n_neighbors
        self.fixmatch_threshold = fixmatch_threshold
        self.device = device
        self.num_workers = num_workers
        self.precision = precision
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ input
    def _validate_input(self, X, reset):
        profile = None if reset else self._profile
        if _is_dataset(X):
            return self._validate_dataset(X, profile, reset)
        if _is_table(X):
            # Rows of features (or flattened images): scikit-learn's own
            # validation gives its standard messages, n_features_in_ and
            # feature_names_in_ for DataFrames.
            X = validate_data(self, X, reset=reset, dtype=[np.float32, np.float64])
        data, profile = as_model_input(
            X, image_shape=self.image_shape, profile=profile, compact=True
        )
        if reset:
            self._profile = profile
            self.n_features_in_ = profile.n_features
        return torch.from_numpy(data)  # uint8 images stay uint8

    def _validate_dataset(self, X, profile, reset):
        """A map-style data set of images, checked on its first item."""
        if isinstance(X, torch.utils.data.IterableDataset) or not hasattr(X, "__len__"):
            raise TypeError(
                f"X is a {type(X).__name__}: data sets must be map-style (len(X) "
                "and X[i]); iterable data sets are not supported."
            )
        if len(X) == 0:
            raise ValueError("X is an empty data set; at least one sample is needed.")
        first = as_image_item(X[0])
        new = InputProfile("image", tuple(int(v) for v in first.shape))
        check_profile(new, profile)
        if reset:
            self._profile = new
            self.n_features_in_ = new.n_features
        return X

    def _resolve_views(self, data):
        """Decide contrast normalisation and flips for the training images."""
        image = self._profile.kind == "image"
        contrast = self.contrast_normalization
        if contrast == "auto" and image:
            # Pretrained features see colours too: on flat-background sets the
            # contrast map lifts KMeans on EfficientNet-Lite0 features from
            # 0.49 to 0.56 (Fashion-MNIST in random colours), 0.22 to 0.66
            # (digits in random colours); see docs/benchmarks.md. Colour
            # images without a flat frame are mapped too when their colours
            # are unrelated to content (textures, shaded scans): MoCo would
            # cluster them by colour.
            raw = self._samples(data, contrast=False)
            reason = contrast_map_reason(lambda: raw.spaced_batches(2000))
            contrast = reason is not None
        self.contrast_normalization_ = bool(contrast) and image
        flip = self.horizontal_flip
        if flip == "auto":
            colour = image and self._profile.shape[0] == 3
            flip = colour and not self.contrast_normalization_
        self.horizontal_flip_ = bool(flip) and image

    def _backbone_spec(self):
        """The ``backbone`` parameter, ready for :func:`build_backbone`."""
        spec = self.backbone
        if isinstance(spec, nn.Module):
            return copy.deepcopy(spec)  # never train the caller's module in place
        if isinstance(spec, tuple):
            if not (len(spec) == 2 and callable(spec[0]) and isinstance(spec[1], dict)):
                raise TypeError(
                    "backbone as a tuple must be (class, kwargs), e.g. "
                    f"(MyNet, {{'width': 64}}); got {spec!r}."
                )
            try:
                module = spec[0](**spec[1])
            except Exception as exc:
                raise ValueError(
                    f"backbone={spec!r} could not be built: {exc}"
                ) from exc
            if not isinstance(module, nn.Module):
                raise TypeError(
                    f"backbone class {spec[0]!r} built a {type(module).__name__}, "
                    "not a torch.nn.Module."
                )
            return module
        return spec

    def _published_weights(self):
        """The library's own pretrained weights this fit uses, or None.

        A torchvision weights name (str) for a torchvision ``backbone``,
        ``True`` for timm's weights of a ``"timm/..."`` backbone, ``None`` for
        no weights (``None``, ``False``) or a local file. A string that is an
        existing file, or that looks like a path, is a file.
        """
        w = self.backbone_weights
        spec = self.backbone
        is_timm = isinstance(spec, str) and spec.startswith(TIMM_PREFIX)
        if isinstance(w, (bool, np.bool_)):
            if w and not is_timm:
                raise ValueError(
                    "backbone_weights=True (the library's own weights) needs a timm "
                    f"backbone such as backbone='timm/resnet18' (backbone={spec!r}); "
                    "torchvision weights go by name, e.g. backbone_weights='DEFAULT'."
                )
            return True if w else None
        if not isinstance(w, str) or os.path.isfile(w):
            return None
        if os.sep in w or os.path.splitext(w)[1] in (".pt", ".pth", ".tar", ".bin"):
            return None  # a path: load_weights says it is missing
        if not isinstance(spec, str) or spec in BACKBONES or is_timm:
            raise ValueError(
                f"backbone_weights={w!r} is not a file, and names of pretrained "
                "weights need a torchvision backbone such as backbone='resnet50' "
                f"(backbone={spec!r}); timm backbones take backbone_weights=True, "
                "with a tag in the name for other weights ('timm/resnet18.a1_in1k')."
            )
        return w

    def _weights_file(self):
        """The local weights file this fit loads (``backbone_weights`` that
        is neither empty nor published weights), or None."""
        w = self.backbone_weights
        if w in (None, False) or self._published_weights() is not None:
            return None
        return w

    def _samples(self, data, contrast=None):
        """What the network sees, batch by batch: the images as float32 in
        [0, 1], or their contrast maps (``contrast``: the fitted choice)."""
        if contrast is None:
            contrast = self.contrast_normalization_
        transform = background_contrast if contrast else None
        if isinstance(data, torch.Tensor):
            return Samples(data, transform)
        return DatasetSamples(data, transform, self.num_workers)

    # -------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Cluster the samples in ``X``.

        Parameters
        ----------
        X : array-like, list of PIL images or torch.utils.data.Dataset
            Images ``(n, H, W)`` or ``(n, H, W, C)`` (uint8 in [0, 255] or
            floats in [0, 1]), a list of PIL images of one size, tabular rows
            ``(n, d)``, or a map-style :class:`torch.utils.data.Dataset` of
            images of one size (items as in
            :func:`~skspice.inputs.as_image_item`; ``(image, target)`` pairs
            work, the targets are ignored), read lazily batch by batch, e.g.
            :class:`skspice.datasets.ImageFolderDataset` for a folder larger
            than memory.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : SPICEClustering
            The fitted estimator.

        Examples
        --------
        >>> from skspice import SPICEClustering
        >>> from skspice.datasets import load_digits_images
        >>> X, _ = load_digits_images()
        >>> model = SPICEClustering(
        ...     n_clusters=10, feature_epochs=1, self_epochs=1, semi_epochs=1,
        ...     batch_size=32, random_state=0,
        ... ).fit(X[:100])
        >>> model.labels_.shape, model.reliability_.shape
        ((100,), (100,))
        """
        try:
            self._fit_all(X)
        except BaseException:
            # Failed or interrupted (KeyboardInterrupt): leave the estimator
            # unfitted rather than half-fitted.
            self._reset_fitted_state()
            raise
        return self

    def _reset_fitted_state(self):
        for name in [v for v in vars(self) if v.endswith("_") or v == "_profile"]:
            if not name.startswith("__"):
                delattr(self, name)

    def _fit_all(self, X):
        data = self._validate_input(X, reset=True)
        n = len(data)
        if n < self.n_clusters:
            raise ValueError(
                f"n_clusters={self.n_clusters} is greater than the number of "
                f"samples n_samples={n}; use at most n_samples clusters."
            )
        device = _resolve_device(self.device)
        ctx = context_from_env(device.type)
        if ctx.active and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank())  # one GPU per process
        self._resolve_views(data)
        ckpt = None
        if self.checkpoint_dir is not None:
            name = f"skspice-{_fingerprint(data, self.get_params())}.pt"
            ckpt = Checkpointer(os.path.join(self.checkpoint_dir, name), [])
        if ckpt is not None and "seed" in ckpt.meta:
            seed = int(ckpt.meta["seed"])  # resume with the interrupted run's seed
        else:
            seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        seed = ctx.broadcast_object(seed)  # random_state=None: rank 0's draw
        if ckpt is not None:
            ckpt.meta["seed"] = seed
        precision = resolve_precision(self.precision, device)
        self.precision_ = precision_name(precision)
        samples = self._samples(data)
        cuda = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), _cudnn_autotune(device):
            torch.manual_seed(seed)
            samples.place(device)
            try:
                self._fit(samples, device, precision, seed, ckpt, ctx)
            finally:
                samples.release()
        self.world_size_ = ctx.world_size
        ctx.barrier()  # every rank is done with the checkpoint
        if ckpt is not None and ctx.is_main:
            ckpt.remove()

    def _fit(self, data, device, precision, seed, ckpt, ctx):
        """SPICE, stage by stage; each stage's details live in its module.

        In a distributed fit (``ctx``) every rank runs this with the same
        seed: ``gen`` (batches, prototypes, selections) is identical on all
        ranks, the augmentations (``device_gen``) differ per rank.
        """
        n, k = len(data), self.n_clusters
        verbose = self.verbose if ctx.is_main else 0
        gen = torch.Generator().manual_seed(seed)
        device_gen = torch.Generator(device).manual_seed(seed + 1 + 7919 * ctx.rank)
        if ckpt is not None:
            ckpt.generators = [gen, device_gen]
        history, seconds = [], {}
        run = dict(
            checkpoint=ckpt,
            gen=gen,
            device_gen=device_gen,
            device=device,
            history=history,
            verbose=self.verbose,
            precision=precision,
            ctx=ctx,
        )
        model, augmenter = self._build_feature_model(data, device)
        eval_bs = self._inference_batch_size(data, device)

        with _timed(seconds, "feature"):
            stage1_epochs = self._train_features(model, data, augmenter, run)
            model.eval()
            self.frozen_backbone_ = self._frozen(stage1_epochs)
            if self.frozen_backbone_:
                # Stages 2-3 train heads only: encode a few views once.
                n_views = (2 if FROZEN.strong_views else 1) * FROZEN.n_views + 1
                text = f"[feature] features of {n:,} samples x {n_views} views"
                with phase(verbose, text):
                    views = FeatureViews.compute(
                        model,
                        data,
                        augmenter,
                        n_views=FROZEN.n_views,
                        batch_size=eval_bs,
                        gen=device_gen,
                        device=device,
                        strong=FROZEN.strong_views,
                        precision=precision,
                        dtype=FROZEN.view_dtype,
                        ctx=ctx,
                    )
                features = views.clean
                # Stages 2-3 see indices, an identity backbone and the views.
                trunk, stage_data, stage_aug = nn.Identity(), views.samples(), views
            else:
                with phase(verbose, f"[feature] computing features of {n:,} samples"):
                    features = apply_in_batches(
                        model, data, eval_bs, device, precision, ctx
                    )
                trunk, stage_data, stage_aug = model, data, augmenter
            embedding = _normalized(features)
        release_freed_memory()  # stage 1's batches: so stage 2 starts low

        with _timed(seconds, "self-label"):
            space = None  # the reference: prototypes among the embeddings
            prototype_space = self._prototype_space(n)
            self.prototype_space_ = prototype_space
            self.head_init_ = self._head_init()
            settings = self_stage.SELF
            if prototype_space == "spectral":
                with phase(verbose, "[self-label] spectral coordinates"):
                    graph_space = embedding
                    if settings.spectral_whitened:
                        graph_space = self._whitened(embedding, seed)
                    space = spectral_coordinates(graph_space, k, random_state=seed)
            elif prototype_space == "smoothed":
                with phase(verbose, "[self-label] neighbour-smoothed embeddings"):
                    space = neighbor_smoothed(embedding)
            elif prototype_space == "whitened":
                with phase(verbose, "[self-label] whitened, smoothed embeddings"):
                    space = neighbor_smoothed(self._whitened(embedding, seed))
            network, selected = self._train_heads(
                trunk, stage_data, features, space, stage_aug, run, eval_bs
            )
            # A frozen trunk's probabilities come from the stored features.
            probs_data = features if self.frozen_backbone_ else data
            text = f"[self-label] cluster probabilities of {n:,} samples"
            with phase(verbose, text):
                probs = _probabilities(
                    network, probs_data, device, eval_bs, precision, ctx
                )
            self_labels = probs.argmax(1).numpy()
        n_features_out = int(features.shape[1])
        if not self.frozen_backbone_:
            del features
        release_freed_memory()

        with _timed(seconds, "semi"):
            reliable = np.full(n, -1)
            counts = {key: np.zeros(k, dtype=np.int64) for key in _RELIABLE_COUNTS}
            n_nb = self._n_neighbors(n)
            text = f"[semi] finding {n_nb} nearest neighbours of {n:,} samples"
            with phase(verbose, text):
                # Each rank searches its share of the rows, against all samples.
                rows = ctx.share_range(n)
                neighbors = ctx.gather(knn_indices(embedding, n_nb, rows=rows))
            if self._semi_epochs(n, device) > 0:
                with phase(verbose, "[semi] selecting reliable pseudo-labels"):
                    reliable, counts = self._reliable_labels(probs, neighbors, seed)
                # Computed alike on every rank; rank 0's copy makes it certain.
                reliable = ctx.broadcast(torch.from_numpy(reliable)).numpy()
                release_freed_memory()  # similarity blocks of the kNN search
                kept = int((reliable >= 0).sum())
                message(verbose, f"[semi] labelled set: {kept:,} of {n:,} samples")
                network = self._train_semi(
                    network, stage_data, reliable, probs, stage_aug, run
                )
                text = f"[semi] cluster probabilities of {n:,} samples"
                with phase(verbose, text):
                    probs = _probabilities(
                        network, probs_data, device, eval_bs, precision, ctx
                    )
                # The labelled set's make-up goes with stage 3's first epoch.
                first = next(r for r in history if r["stage"] == "semi")
                first.update({f"reliable_{c}": counts[c].tolist() for c in counts})

        labels = probs.argmax(1).numpy()
        used = np.unique(labels).size
        if used < k:
            warnings.warn(
                f"only {used} of n_clusters={k} clusters received "
                "samples; the data may hold fewer groups than requested, or "
                "training collapsed (try more feature_epochs or a smaller "
                "n_clusters).",
                UserWarning,
                stacklevel=3,
            )
        if self.frozen_backbone_:
            del views, features
            network = nn.Sequential(model, network)  # the head on its trunk
        self.network_ = network.cpu().eval()
        self.embedding_ = embedding.numpy()
        self.labels_ = labels
        self.self_labels_ = self_labels
        self.selected_head_ = selected
        self.reliable_labels_ = reliable
        self.reliable_mask_ = reliable >= 0
        self.reliable_counts_ = counts
        self.reliability_ = reliability_scores(probs, neighbors)
        # Losses and timings are each rank's own: keep rank 0's everywhere.
        self.history_ = ctx.broadcast_object(history)
        self.stage_seconds_ = ctx.broadcast_object(seconds)
        self.n_features_out_ = n_features_out
        self._eval_batch_size_ = eval_bs

    def _inference_batch_size(self, data, device):
        """Samples per whole-data forward pass, from what the model sees
        (pretrained weights may resize small images up to 224 px)."""
        # Views are made at the stored size, then resized in the model.
        values = max(int(np.prod(data.sample_shape)), self._seen_profile_.n_features)
        return inference_batch_size(values, device)

    def _build_feature_model(self, data, device):
        """Backbone behind a standardisation fitted on ``data``, and augmenter."""
        profile = self._profile
        if profile.kind == "image":
            profile = InputProfile("image", data.sample_shape)  # maybe 1 channel
        # Standardisation travels with the model, so predict and transform
        # take raw [0, 1] images like fit.
        mean, std = data.channel_stats()
        std = torch.where(std > 1e-6, std, torch.ones_like(std))
        view = (-1, 1, 1) if profile.kind == "image" else (-1,)
        standardize = Standardize(mean.view(view), std.view(view))
        named = self._published_weights()
        backbone = build_backbone(
            self._backbone_spec(), profile, pretrained=named is True, device=device
        )
        resize = None
        if isinstance(self.input_size, Integral):
            resize = Resize(self.input_size)
        if named is True:
            cfg = backbone.data_config()
            standardize, resize = self._pretrained_input(
                cfg["mean"], cfg["std"], min(cfg["input_size"][1:]), profile
            )
        elif named is not None:
            preprocess = load_torchvision_weights(backbone, self.backbone, named)
            standardize, resize = self._pretrained_input(
                preprocess.mean, preprocess.std, preprocess.crop_size[0], profile
            )
        elif (path := self._weights_file()) is not None:
            load_weights(backbone, path)
        model = _FeatureModel(standardize, backbone, resize).to(device)
        # Batch sizes and stage-3 budgets follow the size the model sees.
        self._seen_profile_ = profile
        if isinstance(resize, Resize) and profile.kind == "image":
            self._seen_profile_ = InputProfile("image", (3, resize.size, resize.size))
        if profile.kind == "image":
            # NHWC convolutions are about 20 % faster on CPUs (oneDNN) and on
            # tensor-core GPUs; the input needs no conversion.
            model = model.to(memory_format=torch.channels_last)
        return model, make_augmenter(profile, mean, std, flip=self.horizontal_flip_)

    def _pretrained_input(self, mean, std, size, profile):
        """Standardisation and resizing that pretrained weights expect.

        Their own normalisation replaces the data's (broadcast over
        grayscale, which the trunk then sees as three channels); images
        smaller than their ``size`` grow to it unless ``input_size`` is an int.
        """
        standardize = Standardize(
            torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
        )
        if isinstance(self.input_size, Integral):
            return standardize, Resize(self.input_size)
        if profile.image_size < int(size):
            return standardize, Resize(int(size))
        return standardize, None

    def _train_features(self, model, data, augmenter, run):
        """Stage 1: MoCo v2 contrastive learning (skipped at 0 epochs)."""
        n, device = len(data), run["device"]
        epochs = self._epochs(self.feature_epochs, n, regime_for(device).feature)
        if self.feature_epochs == "auto" and self.backbone_weights not in (None, False):
            epochs = 0  # pretrained: stage 2 starts from the given features
        if epochs == 0:
            return 0
        bs = self._batch_size(n, device)
        train_feature_model(
            model,
            data,
            augmenter,
            epochs=epochs,
            batch_size=bs,
            lr=self.feature_lr * bs / 256,
            dim=128,
            # The queue never holds more keys than the data set has images.
            queue_size=min(16384, max(bs, n - n % bs)),
            momentum=0.99,
            temperature=self.temperature,
            **run,
        )
        return epochs

    def _frozen(self, feature_epochs):
        """Whether stages 2-3 keep the backbone frozen (``freeze_backbone``):
        with ``"auto"``, when stage 1 did not train it on this data."""
        if self.freeze_backbone == "auto":
            return feature_epochs == 0
        return bool(self.freeze_backbone)

    def _whitened(self, embedding, seed):
        """``embedding`` whitened with stage 2's settings."""
        settings = self_stage.SELF
        return whitened(
            embedding,
            settings.whiten_components,
            shrinkage_rank=settings.whiten_shrinkage_per_cluster * self.n_clusters,
            random_state=seed,
        )

    def _prototype_space(self, n):
        """The resolved ``prototype_space`` for ``n`` samples (after stage 1)."""
        space = self.prototype_space
        if space == "auto":
            min_per_cluster = self_stage.SELF.spectral_min_per_cluster
            if self.frozen_backbone_:
                # Whiten and smooth features learned elsewhere; a weights file
                # is most often a checkpoint trained on this data, whose
                # neighbours already agree.
                from_file = self._weights_file() is not None
                space = "embedding" if from_file else "whitened"
            elif n >= min_per_cluster * self.n_clusters:
                # Features that stage 3 trains, and enough samples per cluster
                # for the neighbour graph to trace each class.
                space = "spectral"
            else:
                space = "embedding"
        if space == "spectral" and n <= self.n_clusters + 1:
            space = "embedding"  # too few samples for a graph
        return space

    def _head_init(self):
        """The resolved ``head_init`` (after stage 1)."""
        if self.head_init == "auto":
            # Frozen features: start from KMeans partitions; a backbone that
            # stage 1 trained keeps the reference's random heads.
            return "kmeans" if self.frozen_backbone_ else "random"
        return self.head_init

    def _train_heads(self, model, data, features, space, augmenter, run, eval_bs):
        """Stage 2: SPICE-Self; returns backbone + selected head, and its info."""
        n, k = len(data), self.n_clusters
        settings = self_stage.SELF
        head, selected = train_self_label(
            model,
            data,
            features,
            augmenter,
            prototype_space=space,
            n_clusters=k,
            n_heads=self.n_heads,
            head_init=self.head_init_,
            epochs=self._epochs(
                self.self_epochs, n, self._stage_budget("self_label", run["device"])
            ),
            lr=self.self_lr,
            pseudo_batch=min(n, settings.pseudo_batch_per_cluster * k),
            batch_size=settings.batch_size,
            n_repeat=settings.n_repeat,
            center_ratio=settings.center_ratio,
            encode_batch_size=eval_bs,
            **run,
        )
        return nn.Sequential(model, head).eval(), selected

    def _n_neighbors(self, n):
        """Neighbours in the feature graph (stages 2 and 3), at most ``n``."""
        if self.n_neighbors == "auto":
            return min(n, max(5, min(100, n // (4 * self.n_clusters))))
        return min(int(self.n_neighbors), n)

    def _reliable_labels(self, probs, neighbors, seed):
        """Confident samples that agree with their neighbours (balanced here
        unless stage 3 balances its batches); returns the labels and the
        per-cluster counts."""
        n, k = probs.shape
        settings = semi_stage.SEMI
        return reliable_pseudo_labels(
            probs,
            neighbors,
            confidence=self.confidence_threshold,
            consistency=self.consistency_ratio,
            min_per_cluster=settings.fallback_floor(n, k),
            balance=not settings.balanced_batches,
            random_state=seed,
            return_counts=True,
        )

    def _stage_budget(self, stage, device):
        """The ``EpochBudget`` of ``stage`` ("self_label" or "semi"): the
        frozen-backbone one, else the device regime's for these inputs."""
        if self.frozen_backbone_:
            return getattr(FROZEN, stage)
        return regime_for(device).budget(stage, self._seen_profile_)

    def _semi_epochs(self, n, device):
        return self._epochs(self.semi_epochs, n, self._stage_budget("semi", device))

    def _train_semi(self, network, data, reliable, probs, augmenter, run):
        """Stage 3: SPICE-Semi (FixMatch fine-tuning); returns the EMA model."""
        n, device = len(data), run["device"]
        settings = semi_stage.SEMI
        confident = None
        if settings.adaptive_threshold:
            # SPICE-Self's confident predictions start FlexMatch's record.
            conf, pred = probs.max(1)
            confident = torch.where(conf >= self.fixmatch_threshold, pred, -1)
        if settings.fresh_head:
            # A frozen backbone's stage 3 trains the head alone.
            head = network if self.frozen_backbone_ else network[-1]
            semi_stage.reset_head(head, run["gen"])
        return train_semi(
            network.to(device),
            data,
            reliable,
            augmenter,
            epochs=self._semi_epochs(n, device),
            lr=self.semi_lr,
            batch_size=min(2 * self._batch_size(n, device), n),
            unlabeled_ratio=settings.unlabeled_ratio,
            threshold=self.fixmatch_threshold,
            lambda_u=settings.lambda_u,
            ema_decay=settings.ema_decay,
            balanced_batches=settings.balanced_batches,
            confident=confident,
            **run,
        )

    @property
    def _n_features_out(self):
        """Output width, for ``get_feature_names_out``."""
        return self.n_features_out_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform returns float32 features whatever the input precision.
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def _batch_size(self, n, device):
        if self.batch_size == "auto":
            return auto_batch_size(n, self._seen_profile_, device)
        return min(int(self.batch_size), n)

    @staticmethod
    def _epochs(value, n, budget):
        """``value``, or for ``"auto"`` the epochs of ``budget`` (an
        :class:`~skspice.defaults.EpochBudget`) for ``n`` samples."""
        return budget.epochs(n) if value == "auto" else int(value)

    def save_backbone(self, path):
        """Save the fitted feature model's backbone weights to a file.

        The file is a plain state dict (``torch.save``), to be passed back as
        ``backbone_weights`` in another fit with the same ``backbone``, e.g.
        with ``feature_epochs=0`` to skip stage 1. For a torchvision or timm
        backbone it is in that library's own format (without the classifier).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file (written atomically).

        Returns
        -------
        path : str
            The file written.
        """
        check_is_fitted(self)
        backbone = self.network_[0].backbone
        target = getattr(backbone, "weights_target", backbone)
        state = {
            k: v.detach().cpu().contiguous() for k, v in target.state_dict().items()
        }
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    # ---------------------------------------------------------------- predict
    def _forward(self, X, fn):
        check_is_fitted(self)
        data = self._samples(self._validate_input(X, reset=False))
        device = _resolve_device(self.device, for_inference=True)
        net = self.network_.to(device).eval()
        try:  # the fit's precision, where this device can run it
            precision = resolve_precision(getattr(self, "precision_", "fp32"), device)
        except ValueError:
            precision = None
        batch_size = getattr(self, "_eval_batch_size_", 1024)
        try:
            return apply_in_batches(
                lambda x: fn(net, x).float(), data, batch_size, device, precision
            )
        finally:
            self.network_ = net.cpu()

    def predict_proba(self, X):
        """Cluster membership probabilities.

        Parameters
        ----------
        X : array-like, list of PIL images or torch.utils.data.Dataset
            Samples in the form given to :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_clusters)
            Rows sum to one.
        """
        return self._forward(X, lambda net, x: net(x).softmax(-1)).double().numpy()

    def predict(self, X):
        """Cluster of each sample.

        Parameters
        ----------
        X : array-like, list of PIL images or torch.utils.data.Dataset
            Samples in the form given to :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
            Cluster labels in ``[0, n_clusters)``.

        Examples
        --------
        >>> from skspice import SPICEClustering
        >>> from skspice.datasets import load_digits_images
        >>> X, _ = load_digits_images()
        >>> model = SPICEClustering(
        ...     n_clusters=10, feature_epochs=1, self_epochs=1, semi_epochs=1,
        ...     batch_size=32, random_state=0,
        ... ).fit(X[:100])
        >>> model.predict(X[100:110]).shape
        (10,)
        """
        return self.predict_proba(X).argmax(1)

    def fit_predict(self, X, y=None):
        """Fit and return the clusters of the training samples (``labels_``).

        Parameters
        ----------
        X : array-like or list of PIL images
            Training samples.
        y : None
            Ignored.

        Returns
        -------
        ndarray of shape (n_samples,)
            Cluster labels in ``[0, n_clusters)``.
        """
        return self.fit(X).labels_

    def transform(self, X):
        """Learned features: L2-normalised backbone output of the final model.

        Parameters
        ----------
        X : array-like, list of PIL images or torch.utils.data.Dataset
            Samples in the form given to :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            Unit-length features; ``n_features`` is ``n_features_out_``.

        Examples
        --------
        >>> from skspice import SPICEClustering
        >>> from skspice.datasets import load_digits_images
        >>> X, _ = load_digits_images()
        >>> model = SPICEClustering(
        ...     n_clusters=10, feature_epochs=1, self_epochs=1, semi_epochs=1,
        ...     batch_size=32, random_state=0,
        ... ).fit(X[:100])
        >>> model.transform(X[:5]).shape
        (5, 128)
        """
        out = self._forward(X, lambda net, x: F.normalize(net[0](x), dim=1))
        return out.numpy()
