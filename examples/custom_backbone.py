"""Use your own PyTorch network as SPICE's feature extractor (backbone).

A backbone is any ``torch.nn.Module`` that maps a batch of images
``(batch, C, H, W)`` (floats, already standardised by SPICE) to features
``(batch, d)`` and says how wide they are in an ``out_features`` attribute.
SPICE puts its own clustering head on top and trains it through all three
stages. This script clusters the digits twice with the small CNN below:

1. passing a module instance: ``backbone=TinyCNN(width=32)`` (SPICE trains a
   deep copy; your instance stays untouched);
2. passing a ``(class, kwargs)`` pair: ``backbone=(TinyCNN, {"width": 48})``,
   built as ``TinyCNN(width=48)`` inside ``fit``; this form keeps the
   estimator's parameters plain values, so it clones cheaply and prints
   readably (handy in ``GridSearchCV``).

It prints ACC / NMI / ARI of each fit and the width of ``transform``'s
features (the backbone's ``out_features``). About 3-4 minutes on a laptop
CPU (two fits on 1,797 digits); ``SKSPICE_EXAMPLE_QUICK=1`` runs a
few-second version (200 digits, one epoch per stage), for tests.
"""

import os
import time

from torch import nn

from skspice import SPICEClustering
from skspice.datasets import load_digits_images
from skspice.metrics import evaluate

# SKSPICE_EXAMPLE_QUICK=1: tiny data and one epoch per stage (for tests).
QUICK = os.environ.get("SKSPICE_EXAMPLE_QUICK", "0") not in ("", "0")


class TinyCNN(nn.Module):
    """Two 3x3 convolutions, global average pooling, ``width`` features.

    Parameters
    ----------
    in_channels : int, default=1
        Image channels (SPICE gives grayscale images one channel).
    width : int, default=32
        Channels of the last convolution, and so the feature width.
    """

    def __init__(self, in_channels=1, width=32):
        super().__init__()
        self.out_features = width  # required: the width of forward's output
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width // 2, 3, padding=1),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.body(x)  # (batch, width)


def main():
    X, y = load_digits_images()  # (1797, 8, 8) floats in [0, 1]
    params = dict(n_clusters=10, random_state=0)
    if QUICK:
        X, y = X[:200], y[:200]
        params.update(feature_epochs=1, self_epochs=1, semi_epochs=1)
    print(f"digits: {X.shape[0]} images of 8x8 px")

    for name, backbone in [
        ("module instance", TinyCNN(width=32)),
        ("(class, kwargs)", (TinyCNN, {"width": 48})),
    ]:
        start = time.perf_counter()
        spice = SPICEClustering(backbone=backbone, **params).fit(X)
        seconds = time.perf_counter() - start
        scores = evaluate(y, spice.labels_)
        print(
            f"{name:<16} ACC {scores['acc']:.3f}  NMI {scores['nmi']:.3f}  "
            f"ARI {scores['ari']:.3f}  time {seconds:6.1f} s  "
            f"features {spice.transform(X[:1]).shape[1]}"
        )


if __name__ == "__main__":
    main()
