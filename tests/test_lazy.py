"""Data sets read lazily: a torch Dataset as X, ImageFolderDataset, workers."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from params import quick_params
from PIL import Image

from skspice import SPICEClustering
from skspice.datasets import ImageFolderDataset, load_digits_images, load_image_folder
from skspice.inputs import as_image_item


class _Images(torch.utils.data.Dataset):
    """Digits as (image, target) pairs, in one of several item types."""

    def __init__(self, X, y, kind="numpy"):
        self.X, self.y, self.kind = X, y, kind

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        x = self.X[i]
        if self.kind == "tensor":
            x = torch.from_numpy(x)[None]  # torchvision's (C, H, W)
        elif self.kind == "pil":
            x = Image.fromarray(x)
        return x, int(self.y[i])


def _digits(n=120):
    X, y = load_digits_images()
    return np.round(X[:n] * 255).astype(np.uint8), y[:n]


@pytest.mark.parametrize("kind", ["numpy", "tensor", "pil"])
def test_dataset_fit_equals_array_fit(kind):
    X, y = _digits()
    params = quick_params(n_clusters=4)
    a = SPICEClustering(**params).fit(X)
    b = SPICEClustering(**params).fit(_Images(X, y, kind))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.embedding_, b.embedding_, atol=1e-6)
    np.testing.assert_array_equal(b.predict(_Images(X, y, kind)), b.labels_)
    assert b.transform(_Images(X[:5], y[:5], kind)).shape == (5, b.n_features_out_)


def test_workers_read_the_same_batches():
    X, y = _digits(80)
    params = quick_params(n_clusters=3)
    a = SPICEClustering(**params).fit(_Images(X, y))
    b = SPICEClustering(num_workers=2, **params).fit(_Images(X, y))
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_as_image_item_layouts():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert as_image_item(img).shape == (1, 3, 4)
    assert as_image_item((img, 5)).dtype == np.uint8
    rgb = np.zeros((3, 4, 3), dtype=np.float32)
    assert as_image_item(rgb).shape == (3, 3, 4)
    assert as_image_item(torch.zeros(3, 5, 6)).shape == (3, 5, 6)
    with pytest.raises(ValueError, match=r"X\[7\] has shape"):
        as_image_item(np.zeros((3, 4, 5)), index=7)
    with pytest.raises(ValueError, match=r"float pixels"):
        as_image_item(np.full((2, 2), 3.0))


def test_dataset_errors_are_clear():
    X, y = _digits(40)
    with pytest.raises(ValueError, match="empty data set"):
        SPICEClustering(**quick_params()).fit(_Images(X[:0], y[:0]))

    class Ragged(_Images):
        def __getitem__(self, i):
            return np.zeros((8, 8 + (i == 3)), dtype=np.uint8)

    with pytest.raises(ValueError, match="images differ"):
        SPICEClustering(**quick_params(n_clusters=2)).fit(Ragged(X, y))

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(X)

    with pytest.raises(TypeError, match="map-style"):
        SPICEClustering(**quick_params()).fit(Stream())
    model = SPICEClustering(**quick_params(n_clusters=2)).fit(_Images(X, y))
    with pytest.raises(ValueError, match="fitted on"):
        model.predict(_Images(np.zeros((3, 9, 9), dtype=np.uint8), y[:3]))


def test_image_folder_dataset_matches_eager_loader(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            arr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / c / f"{i}.png")
    ds = ImageFolderDataset(tmp_path, image_size=(4, 6))
    X, y = load_image_folder(tmp_path, image_size=(4, 6))
    assert len(ds) == 6 and ds.classes == ["a", "b"]
    np.testing.assert_array_equal(np.stack([ds[i][0] for i in range(6)]), X)
    np.testing.assert_array_equal(ds.targets, y)


LAZY_CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from skspice import SPICEClustering
    from skspice.datasets import ImageFolderDataset, load_image_folder

    def rss_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    baseline = rss_mib()
    peak = [baseline]

    def sample():
        while True:
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()
    if sys.argv[2] == "lazy":
        X = ImageFolderDataset(sys.argv[1])
    else:
        X, _ = load_image_folder(sys.argv[1])
    model = SPICEClustering(
        n_clusters=2, backbone="strided_cnn", input_size=32, feature_epochs=1,
        self_epochs=1, semi_epochs=1, batch_size=16, n_heads=2, random_state=0,
        device="cpu",
    ).fit(X)
    time.sleep(0.05)
    print(json.dumps({"grown": peak[0] - baseline, "n": len(model.labels_)}))
    """
)


def _peak_growth(folder, mode):
    out = subprocess.run(
        [sys.executable, "-c", LAZY_CHILD, str(folder), mode],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_lazy_folder_peak_memory_below_loading_all_images(tmp_path):
    """The same fit from an ImageFolderDataset and from load_image_folder's
    array: reading lazily saves (at least most of) the images' bytes.

    Measured: 4,000 images of 128 px RGB (188 MiB as uint8), peak growth
    about 400 MiB lazily; training itself (model, one batch, augmentation
    temporaries, allocator) is the rest.
    """
    n, size = 4000, 128
    ramp = np.linspace(0, 255, size)
    for c in ("h", "v"):
        (tmp_path / c).mkdir()
        base = ramp[None, :] if c == "h" else ramp[:, None]
        for i in range(n // 2):
            img = np.broadcast_to(base, (size, size))[..., None] * [1, (i % 7) / 7, 0.5]
            Image.fromarray(img.astype(np.uint8)).save(tmp_path / c / f"{i}.png")
    images_mib = n * size * size * 3 / 2**20
    lazy = _peak_growth(tmp_path, "lazy")
    eager = _peak_growth(tmp_path, "eager")
    assert lazy["n"] == eager["n"] == n
    assert lazy["grown"] < eager["grown"] - 0.5 * images_mib, (lazy, eager, images_mib)


def test_dataset_samples_read_one_item_to_start_and_report_their_size():
    from skspice.samples import DatasetSamples

    X, y = _digits(10)
    reads = []

    class Counted(_Images):
        def __getitem__(self, i):
            reads.append(i)
            return super().__getitem__(i)

    s = DatasetSamples(Counted(X, y))
    assert reads == [0]  # shape and dtype come from one read of item 0
    assert s.sample_shape == (1, 8, 8) and s.nbytes == 10 * 64  # uint8 (C, H, W)
