"""Feature backbones: a registry chosen by input size, torchvision and timm
models, custom modules, and loading weights from local files.

Every backbone maps a batch of inputs to a ``(batch, out_features)`` tensor and
exposes ``out_features``. Inputs arrive as images in [0, 1] (or raw tabular
rows); the per-channel standardisation fitted on the training data sits in
front of the backbone (:class:`Standardize`) so callers never normalise.
"""

import os

import torch
from torch import nn

from .defaults import auto_backbone
from .weights import (
    load_state,
    read_checkpoint,
    select_state,
    torchvision_state_dict,
    torchvision_weights,
)

__all__ = [
    "BACKBONES",
    "MLP",
    "Resize",
    "SmallCNN",
    "SmallResNet",
    "Standardize",
    "StridedCNN",
    "TIMM_PREFIX",
    "build_backbone",
    "load_torchvision_weights",
    "load_weights",
]


class Standardize(nn.Module):
    """Subtract a fitted mean and divide by a fitted scale.

    Parameters
    ----------
    mean, std : torch.Tensor
        Broadcastable to one sample (per channel for images, per feature for
        tabular rows).
    """

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x):
        return (x - self.mean) / self.std


class Resize(nn.Module):
    """Scale images so that their smaller side is ``size`` pixels.

    Pretrained models expect the image size they were trained at; small
    images are enlarged (bilinear) in the model, after augmentation, so the
    stored data and the augmentations stay small.

    Parameters
    ----------
    size : int
        Target length of the smaller side.
    """

    def __init__(self, size):
        super().__init__()
        self.size = int(size)

    def forward(self, x):
        h, w = x.shape[-2:]
        if min(h, w) == self.size:
            return x
        scale = self.size / min(h, w)
        out = (max(1, round(h * scale)), max(1, round(w * scale)))
        return nn.functional.interpolate(
            x, size=out, mode="bilinear", align_corners=False, antialias=scale < 1
        )

    def extra_repr(self):
        return f"size={self.size}"


def _conv_bn(c_in, c_out, stride=1):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """A VGG-style CNN for tiny images (up to about 16 px).

    Two 3x3 conv blocks at full resolution, a 2x2 max-pool, two more blocks,
    then global average pooling. Cheap enough to train on a laptop CPU.

    Parameters
    ----------
    in_channels : int
        Image channels.
    width : int, default=64
        Channels of the first blocks; the last blocks use ``2 * width``.
    """

    def __init__(self, in_channels, width=64):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            _conv_bn(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_features = 2 * width

    def forward(self, x):
        return self.features(x)


class StridedCNN(nn.Module):
    """A VGG-style CNN for 17-64 px images, sized for CPU training.

    One 3x3 block at full resolution, then two blocks at half and two at a
    quarter resolution (2x2 max-pools between), then global average pooling.
    Pooling early keeps the cost per image about 2.5 times below
    :class:`SmallResNet` at the same width.

    Parameters
    ----------
    in_channels : int
        Image channels.
    width : int, default=32
        Channels of the first block; later blocks use 2x and 4x.
    """

    def __init__(self, in_channels, width=32):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            _conv_bn(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn(2 * width, 4 * width),
            _conv_bn(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_features = 4 * width

    def forward(self, x):
        return self.features(x)


class _BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet for 17-64 px images, narrow enough for a CPU.

    3x3 stem at stride 1 (no max-pool), then stages of basic residual blocks
    that halve the resolution and double the width, then global average
    pooling.

    Parameters
    ----------
    in_channels : int
        Image channels.
    width : int, default=32
        Channels of the first stage.
    blocks : tuple of int, default=(1, 1, 1)
        Residual blocks per stage.
    """

    def __init__(self, in_channels, width=32, blocks=(1, 1, 1)):
        super().__init__()
        layers = [_conv_bn(in_channels, width)]
        c_in = width
        for i, n_blocks in enumerate(blocks):
            c_out = width * 2**i
            for j in range(n_blocks):
                layers.append(_BasicBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out_features = c_in

    def forward(self, x):
        return self.features(x)


class MLP(nn.Module):
    """A multi-layer perceptron backbone for tabular rows.

    Parameters
    ----------
    in_features : int
        Features per row.
    hidden : int, default=256
        Width of the hidden layers.
    out_features : int, default=128
        Width of the output representation.
    """

    def __init__(self, in_features, hidden=256, out_features=128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_features),
        )
        self.out_features = out_features

    def forward(self, x):
        return self.net(x.flatten(1))  # images are read as flat rows


class _TorchvisionTrunk(nn.Module):
    """A torchvision classification model with its last linear layer removed.

    Only the final ``nn.Linear`` of the classifier becomes an identity, so
    pooling, flattening and normalisation layers inside the head stay.
    """

    _HEAD_NAMES = ("fc", "classifier", "heads", "head")

    def __init__(self, name, profile):
        super().__init__()
        import torchvision

        model = torchvision.models.get_model(name, weights=None)
        head_name = next((h for h in self._HEAD_NAMES if hasattr(model, h)), None)
        if head_name is None:
            raise ValueError(f"backbone={name!r}: cannot find its classifier layer.")
        head = getattr(model, head_name)
        dropped = ()
        if isinstance(head, nn.Linear):
            setattr(model, head_name, nn.Identity())
            dropped = (f"{head_name}.",)
        else:
            linear = [
                (n, m) for n, m in head.named_modules() if isinstance(m, nn.Linear)
            ]
            if linear:
                parent_name, _, leaf = linear[-1][0].rpartition(".")
                parent = head.get_submodule(parent_name) if parent_name else head
                setattr(parent, leaf, nn.Identity())
                dropped = (f"{head_name}.{linear[-1][0]}.",)
            # A head without a linear layer (e.g. SqueezeNet's 1x1 conv) is
            # kept whole: its output is then the feature vector.
        self.model = model
        # load_weights reads torchvision's own checkpoints into the inner
        # model, whose final linear weights we do not use.
        self.weights_target = model
        self.ignored_weight_prefixes = dropped
        self.out_features = _probe_out_features(self, profile)

    def forward(self, x):
        # Grayscale images are repeated to three channels so that weights
        # pretrained on RGB images load unchanged.
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.model(x)


def _import_timm():
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            'backbone="timm/..." needs the timm package: pip install "skspice[timm]"'
        ) from exc
    return timm


def _timm_cache_hint(exc, name, cfg):
    """A short error for timm weights that are neither cached nor downloadable."""
    reason = f"could not get timm's weights for {name!r} ({type(exc).__name__})"
    repo = cfg.get("hf_hub_id")
    if not repo:  # an old-style timm URL, cached by torch.hub
        folder = os.path.join(torch.hub.get_dir(), "checkpoints")
        return OSError(
            f"{reason}. Offline, download {cfg.get('url')} elsewhere and place "
            f"it in {folder}."
        )
    from huggingface_hub import constants

    # The layout hf_hub_download reads offline: refs/<branch> names a
    # snapshot folder that holds the file.
    filename = cfg.get("hf_hub_filename") or "model.safetensors"
    folder = os.path.join(constants.HF_HUB_CACHE, f"models--{repo.replace('/', '--')}")
    return OSError(
        f"{reason}. Offline, download {filename} of the Hugging Face repo {repo} "
        f"elsewhere and place it at snapshots/main/{filename} in {folder}, with "
        "a text file refs/main there holding main."
    )


class _TimmTrunk(nn.Module):
    """A timm model built without its classifier (pooled features).

    Parameters
    ----------
    name : str
        A timm model name, optionally with a pretrained tag
        (``"resnet18.a1_in1k"``).
    pretrained : bool, default=False
        Load timm's own pretrained weights (from the Hugging Face hub cache,
        downloading only if they are not there).
    """

    def __init__(self, name, pretrained=False):
        super().__init__()
        timm = _import_timm()
        if pretrained:
            cfg = timm.models.get_pretrained_cfg(name)
            cfg = cfg.to_dict() if cfg is not None else {}
            if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
                tags = timm.list_pretrained(name.partition(".")[0] + ".*")
                raise ValueError(
                    f"timm has no pretrained weights for {name!r}"
                    + (f"; names with weights: {tags[:8]}." if tags else ".")
                )
            try:
                model = timm.create_model(name, pretrained=True, num_classes=0)
            except OSError as exc:  # not cached and no network, proxy, disk
                raise _timm_cache_hint(exc, name, cfg) from exc
        else:
            model = timm.create_model(name, pretrained=False, num_classes=0)
        self.model = model
        # load_weights reads full timm checkpoints into the inner model; the
        # classifier that num_classes=0 removed is skipped (only prefixes that
        # no remaining key has, e.g. "head.fc." but never "head." of a norm).
        classifier = model.pretrained_cfg.get("classifier") or ()
        if isinstance(classifier, str):
            classifier = (classifier,)
        keys = model.state_dict().keys()
        self.weights_target = model
        self.ignored_weight_prefixes = tuple(
            f"{c}." for c in classifier if not any(k.startswith(f"{c}.") for k in keys)
        )
        # Models with a pre-logits layer (MobileNetV3) return head_hidden_size
        # features, not num_features; timm < 1.0 has no head_hidden_size.
        width = getattr(model, "head_hidden_size", None) or model.num_features
        self.out_features = int(width)

    def data_config(self):
        """The weights' input handling: ``mean``, ``std``, ``input_size``, ...

        Returns
        -------
        dict
            :func:`timm.data.resolve_data_config` of the inner model.
        """
        from timm.data import resolve_data_config

        return resolve_data_config(model=self.model)

    def forward(self, x):
        # Grayscale is repeated to three channels, as pretrained weights need.
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return self.model(x)


def _build_timm(spec, name, pretrained):
    timm = _import_timm()
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ValueError(
            f"backbone={spec!r}: {name!r} is not a timm model name"
            + (f"; close names: {close}." if close else "; see timm.list_models().")
        )
    arch, _, tag = name.partition(".")
    if tag:
        try:
            timm.models.get_pretrained_cfg(name)
        except RuntimeError:
            raise ValueError(
                f"backbone={spec!r}: timm model {arch!r} has no tag {tag!r}; "
                f"tags with weights: {timm.list_pretrained(arch + '.*')[:8]}."
            ) from None
    return _TimmTrunk(name, pretrained=pretrained)


#: Stages of basic blocks of the CIFAR-stem ResNets (``"cifar_resnet18"``...).
CIFAR_RESNET_BLOCKS = {"cifar_resnet18": (2, 2, 2, 2), "cifar_resnet34": (3, 4, 6, 3)}

#: Names accepted by ``backbone=`` besides any torchvision model name.
BACKBONES = (
    "auto",
    "small_cnn",
    "strided_cnn",
    "small_resnet",
    "cifar_resnet18",
    "cifar_resnet34",
    "mlp",
)
#: Prefix of timm model names in ``backbone=`` (``"timm/resnet18"``).
TIMM_PREFIX = "timm/"


def build_backbone(spec, profile, pretrained=False, device="cpu"):
    """Build the backbone described by ``spec`` for inputs like ``profile``.

    Parameters
    ----------
    spec : str or torch.nn.Module
        ``"auto"`` (chosen by input and ``device``,
        :func:`skspice.defaults.auto_backbone`: :class:`MLP` for tabular
        rows, :class:`SmallCNN` up to 16 px; on the CPU :class:`StridedCNN`
        up to 64 px and torchvision ``resnet18`` above; on CUDA
        ``"cifar_resnet18"`` up to 64 px and ``resnet34`` above), one of
        :data:`BACKBONES` (``"cifar_resnet18"`` and ``"cifar_resnet34"`` are
        ResNets with the CIFAR stem: a 3x3 stride-1 first convolution and no
        max-pool, :class:`SmallResNet` at width 64), any
        torchvision classification model name (e.g. ``"resnet34"``),
        ``"timm/<name>"`` for a timm model (e.g. ``"timm/efficientnet_b0"``,
        needs the ``timm`` package), or a module mapping a batch to
        ``(batch, d)`` features. A module is used as given (the estimator
        deep-copies it first).
    profile : InputProfile
        The validated input profile.
    pretrained : bool, default=False
        Load the library's own pretrained weights (timm backbones only:
        through timm, from the Hugging Face hub cache). Torchvision weights
        are loaded by name with :func:`load_torchvision_weights` instead.
    device : torch.device or str, default="cpu"
        Where the backbone will train; decides what ``"auto"`` stands for.

    Returns
    -------
    backbone : torch.nn.Module
        Module with an ``out_features`` attribute.

    Raises
    ------
    ImportError
        For a timm backbone when timm is not installed.
    ValueError
        For unknown names, image backbones on tabular data, and ``pretrained``
        with a backbone that is not a timm model.
    OSError
        When timm's pretrained weights are neither cached nor downloadable;
        the message names the cache folder.
    """
    is_timm = isinstance(spec, str) and spec.startswith(TIMM_PREFIX)
    if pretrained and not is_timm:
        raise ValueError(
            f"pretrained weights of the library itself need a timm backbone such as "
            f"'timm/resnet18'; got backbone={spec!r}."
        )
    if isinstance(spec, nn.Module):
        if not hasattr(spec, "out_features"):
            spec.out_features = _probe_out_features(spec, profile)
        return spec
    name = auto_backbone(profile, device) if spec == "auto" else spec
    if profile.kind == "tabular" and name != "mlp":
        raise ValueError(
            f"backbone={spec!r} needs image input but X is tabular (2-D rows); use "
            "backbone='auto' or 'mlp', or pass image_shape to read rows as images."
        )
    if name == "mlp":
        return MLP(profile.n_features)
    if is_timm:
        return _build_timm(spec, name[len(TIMM_PREFIX) :], pretrained)
    c = profile.shape[0]
    if name == "small_cnn":
        return SmallCNN(c)
    if name == "strided_cnn":
        return StridedCNN(c)
    if name == "small_resnet":
        return SmallResNet(c)
    if name in CIFAR_RESNET_BLOCKS:
        return SmallResNet(c, width=64, blocks=CIFAR_RESNET_BLOCKS[name])
    import torchvision

    if name not in torchvision.models.list_models(torchvision.models):
        raise ValueError(
            f"backbone={spec!r} is not known: use 'auto', one of {BACKBONES[1:]}, a "
            "torchvision classification model name such as 'resnet18', a timm "
            "model as 'timm/<name>', or a torch.nn.Module."
        )
    return _TorchvisionTrunk(name, profile)


def _probe_out_features(module, profile):
    """Find a custom backbone's output width with one dummy forward pass."""
    was_training = module.training
    module.eval()
    param = next(iter(module.parameters()), None)
    device = param.device if param is not None else "cpu"
    try:
        with torch.no_grad():
            out = module(torch.zeros((2,) + tuple(profile.shape), device=device))
    except Exception as exc:
        raise ValueError(
            f"the custom backbone failed on a dummy batch of shape "
            f"{(2,) + tuple(profile.shape)}: {exc}"
        ) from exc
    finally:
        module.train(was_training)
    if out.ndim != 2:
        raise ValueError(
            f"a custom backbone must return (batch, features); it returned shape "
            f"{tuple(out.shape)}. Add nn.Flatten() or pooling at its end."
        )
    return int(out.shape[1])


def load_weights(module, path, strict=True):
    """Load a local state dict or checkpoint into ``module``, safely.

    Loads with ``torch.load(weights_only=True)`` (no pickled code runs),
    unwraps checkpoints that nest the weights (``"state_dict"``, ``"model"``,
    ...) and finds the backbone inside checkpoints of other tools by their
    key prefixes (``module.``, ``encoder_q.``, ``backbone.``, ``model.``; see
    :func:`skspice.weights.select_state`). For torchvision and timm backbones
    the file is a state dict of the torchvision or timm model (its classifier
    weights are ignored).

    Parameters
    ----------
    module : torch.nn.Module
        Module to load into.
    path : str or os.PathLike
        A file saved with ``torch.save``.
    strict : bool, default=True
        Require every key to match.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or unreadable file; keys or shapes that do not fit (listed).
    """
    state = read_checkpoint(path)
    target = getattr(module, "weights_target", module)
    state = select_state(state, target.state_dict().keys())
    ignored = getattr(module, "ignored_weight_prefixes", ())
    load_state(target, state, repr(os.fspath(path)), ignored, strict=strict)


def load_torchvision_weights(module, name, weights_name):
    """Load torchvision's pretrained ``weights_name`` into a torchvision trunk.

    Parameters
    ----------
    module : torch.nn.Module
        A backbone built by :func:`build_backbone` from torchvision model
        ``name``.
    name : str
        The torchvision model name.
    weights_name : str
        ``"DEFAULT"``, ``"IMAGENET1K_V1"``, ...

    Returns
    -------
    torchvision.transforms.ImageClassification
        The weights' own preprocessing (mean, std, crop size).
    """
    weights = torchvision_weights(name, weights_name)
    state = torchvision_state_dict(weights)
    target = getattr(module, "weights_target", module)
    ignored = getattr(module, "ignored_weight_prefixes", ())
    load_state(target, state, str(weights), ignored)
    return weights.transforms()
