"""Which colour data sets does ``contrast_normalization="auto"`` map?

For every colour set of the generalisation suite (``benchmarks/suite.py``)
and two controls whose colours do follow their content, print the median
flat-frame fraction (:func:`skspice.contrast.flat_border_fraction`), the
colour-structure ratio (:func:`skspice.contrast.color_structure_ratio`) and
the resulting choice. The controls:

* ``fashion-colours-by-class``: Fashion-MNIST with one foreground and one
  background colour per class (plus noise), i.e. colour is informative;
* ``photo-crops-32`` / ``photo-crops-96``: 32 px (resized) crops of 32 and
  96 px from scikit-learn's two sample photographs.

Example::

    python benchmarks/color_nuisance.py            # suite sets and controls
    python benchmarks/color_nuisance.py --held-out # also the held-out sets
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import DATA_SEED, SETS, _fashion, load_set  # noqa: E402
from skspice.contrast import (  # noqa: E402
    color_structure_ratio,
    contrast_map_reason,
    flat_border_fraction,
)
from skspice.datasets import FASHION_MNIST_PATH  # noqa: E402

#: Images per set used by the estimator's tests (evenly spaced).
N_IMAGES = 2000


def colours_by_class(X, y, seed=DATA_SEED):
    """Gray images drawn in one foreground/background colour pair per class."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(size=(int(y.max()) + 1, 2, 3))
    fg, bg = (
        np.clip(base[y, i] + rng.normal(0, 0.1, (len(y), 3)), 0, 1)[:, None, None]
        for i in (0, 1)
    )
    v = np.asarray(X, dtype=np.float64)[..., None] / 255.0
    return np.round((bg + v * (fg - bg)) * 255).astype(np.uint8)


def photo_crops(n, side, size=32, seed=DATA_SEED):
    """Random ``side`` px crops of the sample photographs, resized to ``size``."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        im = photos[i % len(photos)]
        y0 = rng.integers(0, im.shape[0] - side)
        x0 = rng.integers(0, im.shape[1] - side)
        crop = torch.tensor(im[y0 : y0 + side, x0 : x0 + side]).permute(2, 0, 1)
        crop = crop[None].float()
        crops.append(F.interpolate(crop, size=size, mode="bilinear", antialias=True))
    return torch.cat(crops).permute(0, 2, 3, 1).round().clamp(0, 255).byte().numpy()


def describe(X):
    """Flat fraction, ratio and both decisions for uint8 (n, H, W, 3) images."""
    step = max(1, -(-len(X) // N_IMAGES))
    x = torch.from_numpy(np.array(X[::step])).permute(0, 3, 1, 2)
    x = x.float() / 255
    reason = contrast_map_reason(lambda: [x])  # the estimator's own rule
    return {
        "flat_fraction": float(flat_border_fraction(x).median()),
        "ratio": color_structure_ratio(x),
        "contrast_maps": reason is not None,
        "why": reason,
    }


def main(argv=None):
    """Print one line per set."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--held-out", action="store_true", help="also held-out sets")
    p.add_argument("--data-path", default=FASHION_MNIST_PATH)
    args = p.parse_args(argv)
    groups = ("suite", "held-out") if args.held_out else ("suite",)
    names = [n for n, (_, desc, g) in SETS.items() if g in groups and "RGB" in desc]
    sets = {n: load_set(n, args.data_path)[0] for n in names}
    X, y = _fashion(args.data_path)
    sets["fashion-colours-by-class"] = colours_by_class(X, y)
    for side in (32, 96):
        sets[f"photo-crops-{side}"] = photo_crops(N_IMAGES, side)
    print("| set | flat frame (median) | colour-structure ratio | contrast maps |")
    print("|---|---:|---:|---|")
    for name, images in sets.items():
        d = describe(images)
        choice = f"yes ({d['why']})" if d["contrast_maps"] else "no (colours kept)"
        print(f"| {name} | {d['flat_fraction']:.2f} | {d['ratio']:.3f} | {choice} |")


if __name__ == "__main__":
    main()
