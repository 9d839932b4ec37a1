"""Cluster a folder of photographs with an ImageNet-pretrained ResNet-50.

The folder holds one sub-folder per class (``photos/cat/1.jpg``,
``photos/dog/2.png``, ...); the sub-folder names are used only to score the
clusters. The backbone is torchvision's ResNet-50 with its
``"IMAGENET1K_V2"`` weights: **the first run downloads them (about 100 MB)**
into the torch hub cache (``torch.hub.get_dir()``), later runs read them from
there. Without internet, download the file named in the error message
elsewhere and place it at the path the message gives.

With pretrained weights, stage 1 (contrastive training) is skipped and the
backbone stays frozen (``freeze_backbone="auto"``): SPICE-Self trains
clustering heads on the ImageNet features, started from KMeans partitions
(``head_init="auto"``), with prototypes among whitened, neighbour-smoothed features
(``prototype_space="auto"``), then SPICE-Semi
trains the head further on reliable pseudo-labels. On a CPU keep the images
small and the epochs few; on a GPU the defaults are fine.

Run::

    python examples/pretrained_folder.py photos/ --n-clusters 10
"""

import argparse
import time

from skspice import SPICEClustering
from skspice.datasets import load_image_folder
from skspice.metrics import evaluate


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="one sub-folder per class")
    p.add_argument("--n-clusters", type=int, default=None, help="default: classes")
    p.add_argument("--image-size", type=int, default=96, help="images are read at")
    p.add_argument("--input-size", type=int, default=None, help="size the network sees")
    p.add_argument("--self-epochs", default="auto")
    p.add_argument("--semi-epochs", default="auto")
    args = p.parse_args(argv)

    X, y, names = load_image_folder(
        args.folder, image_size=args.image_size, return_class_names=True
    )
    k = args.n_clusters or len(names)
    print(f"{len(X)} images of {X.shape[1]}x{X.shape[2]} px, {len(names)} classes")

    def epochs(value):
        return value if value == "auto" else int(value)

    spice = SPICEClustering(
        n_clusters=k,
        backbone="resnet50",
        backbone_weights="IMAGENET1K_V2",  # downloads once, then cached
        input_size=args.input_size or "auto",  # "auto": the weights' 224 px
        self_epochs=epochs(args.self_epochs),
        semi_epochs=epochs(args.semi_epochs),
        random_state=0,
    )
    start = time.perf_counter()
    labels = spice.fit_predict(X)
    scores = evaluate(y, labels)
    print(
        f"SPICE (ResNet-50, ImageNet): ACC {scores['acc']:.3f} "
        f"NMI {scores['nmi']:.3f} ARI {scores['ari']:.3f} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return labels


if __name__ == "__main__":
    main()
