"""Tests for skspice.datasets: files in the real formats are written to tmp_path."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skspice.datasets import (
    DATASET_NAMES,
    FASHION_MNIST_PATH,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_digits_images,
    load_fashion_mnist,
    load_image_folder,
)

# ---------------------------------------------------------------------------
# helpers writing the real on-disk formats
# ---------------------------------------------------------------------------


def idx_bytes(array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    return header + array.tobytes()


def write_file(path, data, compress):
    path = Path(path)
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_idx_split(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    return images, labels


def write_fashion(folder, compress=True, n_train=12, n_test=5):
    folder.mkdir(parents=True, exist_ok=True)
    train = make_idx_split(n_train, 0)
    test = make_idx_split(n_test, 1)
    for split, (images, labels) in (("train", train), ("t10k", test)):
        write_file(folder / f"{split}-images-idx3-ubyte", idx_bytes(images), compress)
        write_file(folder / f"{split}-labels-idx1-ubyte", idx_bytes(labels), compress)
    return train, test


def cifar_batch(n, seed, label_keys, n_classes):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    # CIFAR rows: 1024 red, then 1024 green, then 1024 blue values.
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)
    batch = {b"data": data, b"batch_label": b"batch"}
    labels = {}
    for key, k in zip(label_keys, n_classes, strict=True):
        labels[key] = rng.integers(0, k, size=n)
        batch[key.encode()] = labels[key].tolist()
    return batch, images, labels


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        batch, X, lab = cifar_batch(n + seed, seed, ["labels"], [10])
        write_pickle(folder / name, batch)
        images.append(X)
        labels.append(lab["labels"])
    return images, labels


def write_cifar100(folder):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for seed, (name, n) in enumerate((("train", 7), ("test", 3))):
        batch, X, lab = cifar_batch(
            n, seed, ["coarse_labels", "fine_labels"], [20, 100]
        )
        write_pickle(folder / name, batch)
        out[name] = (X, lab)
    return out


# ---------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------


def test_load_digits_images():
    from sklearn.datasets import load_digits

    X, y = load_digits_images()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    digits = load_digits()
    np.testing.assert_allclose(X, digits.images / 16, rtol=1e-6)
    np.testing.assert_array_equal(y, digits.target)


# ---------------------------------------------------------------------------
# Fashion-MNIST / IDX
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_subsets(tmp_path, compress):
    (Xtr, ytr), (Xte, yte) = write_fashion(tmp_path, compress=compress)

    X, y = load_fashion_mnist(tmp_path)
    assert X.shape == (17, 28, 28) and X.dtype == np.uint8
    assert y.shape == (17,) and y.dtype == np.int64
    np.testing.assert_array_equal(X, np.concatenate([Xtr, Xte]))
    np.testing.assert_array_equal(y, np.concatenate([ytr, yte]))

    X, y = load_fashion_mnist(str(tmp_path), subset="train")
    np.testing.assert_array_equal(X, Xtr)
    np.testing.assert_array_equal(y, ytr)

    X, y = load_fashion_mnist(tmp_path, subset="test")
    np.testing.assert_array_equal(X, Xte)
    np.testing.assert_array_equal(y, yte)
    assert X.flags.writeable


def test_fashion_mnist_mixed_plain_and_gzip(tmp_path):
    (Xtr, ytr), (Xte, yte) = write_fashion(tmp_path, compress=True)
    gz = tmp_path / "train-labels-idx1-ubyte.gz"
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    X, y = load_fashion_mnist(tmp_path)
    np.testing.assert_array_equal(y, np.concatenate([ytr, yte]))


def test_fashion_mnist_train_only_needs_train_files(tmp_path):
    (Xtr, ytr), _ = write_fashion(tmp_path)
    for f in tmp_path.glob("t10k-*"):
        f.unlink()
    X, y = load_fashion_mnist(tmp_path, subset="train")
    np.testing.assert_array_equal(y, ytr)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path, subset="test")


def test_fashion_mnist_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(missing)
    msg = str(info.value)
    assert str(missing) in msg
    assert "train-images-idx3-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_fashion_mnist_missing_file(tmp_path):
    write_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte" in msg and str(tmp_path) in msg
    assert "apt-get install dataset-fashion-mnist" in msg


def test_fashion_mnist_bad_magic(tmp_path):
    (Xtr, ytr), _ = write_fashion(tmp_path, compress=False)
    # labels written where images are expected: magic 0x801 instead of 0x803
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(ytr))
    with pytest.raises(ValueError, match="bad magic number 0x00000801") as info:
        load_fashion_mnist(tmp_path, subset="train")
    assert str(path) in str(info.value)
    assert "0x00000803" in str(info.value)


def test_fashion_mnist_bad_label_magic(tmp_path):
    write_fashion(tmp_path)
    path = write_file(
        tmp_path / "train-labels-idx1-ubyte",
        idx_bytes(np.zeros(12), magic=0x00000903),
        compress=True,
    )
    with pytest.raises(ValueError, match="0x00000801") as info:
        load_fashion_mnist(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_truncated(tmp_path, compress):
    (Xtr, _), _ = write_fashion(tmp_path, compress=compress)
    path = write_file(
        tmp_path / "train-images-idx3-ubyte", idx_bytes(Xtr)[:-10], compress
    )
    with pytest.raises(ValueError, match="truncated") as info:
        load_fashion_mnist(tmp_path)
    assert str(path) in str(info.value)


def test_fashion_mnist_truncated_header(tmp_path):
    write_fashion(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">II", 0x803, 12))
    with pytest.raises(ValueError, match="truncated.*header"):
        load_fashion_mnist(tmp_path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="truncated"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_truncated_gzip_stream(tmp_path):
    write_fashion(tmp_path, compress=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="gzip") as info:
        load_fashion_mnist(tmp_path)
    assert str(path) in str(info.value)


def test_fashion_mnist_oversized(tmp_path):
    (Xtr, _), _ = write_fashion(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(Xtr) + b"\x00")
    with pytest.raises(ValueError, match="expected"):
        load_fashion_mnist(tmp_path)


def test_fashion_mnist_count_mismatch(tmp_path):
    _, (Xte, yte) = write_fashion(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(yte[:-1]))
    with pytest.raises(ValueError, match="5 images.*4 labels"):
        load_fashion_mnist(tmp_path, subset="test")


def test_fashion_mnist_wrong_image_size(tmp_path):
    write_fashion(tmp_path, compress=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((5, 32, 32))))
    with pytest.raises(ValueError, match=r"\(28, 28\)"):
        load_fashion_mnist(tmp_path, subset="test")


def test_fashion_mnist_label_out_of_range(tmp_path):
    write_fashion(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes([0, 1, 2, 3, 10]))
    with pytest.raises(ValueError, match="out of range"):
        load_fashion_mnist(tmp_path, subset="test")


@pytest.mark.parametrize("subset", ["validation", "ALL", None])
def test_bad_subset(tmp_path, subset):
    for loader in (load_fashion_mnist, load_cifar10, load_cifar100):
        with pytest.raises(ValueError, match="subset"):
            loader(tmp_path, subset=subset)


def test_real_fashion_mnist():
    if not Path(FASHION_MNIST_PATH).is_dir():
        pytest.skip(
            f"{FASHION_MNIST_PATH} not found (apt-get install dataset-fashion-mnist)"
        )
    X, y = load_fashion_mnist()
    assert X.shape == (70000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (70000,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [7000] * 10)


# ---------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------


def test_cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    images, labels = write_cifar10(folder)

    for path in (folder, tmp_path, str(tmp_path)):
        X, y = load_cifar10(path)
        assert X.shape == (sum(len(i) for i in images), 32, 32, 3)
        assert X.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(X, np.concatenate(images))
        np.testing.assert_array_equal(y, np.concatenate(labels))

    X, y = load_cifar10(tmp_path, subset="train")
    np.testing.assert_array_equal(X, np.concatenate(images[:5]))
    np.testing.assert_array_equal(y, np.concatenate(labels[:5]))
    X, y = load_cifar10(tmp_path, subset="test")
    np.testing.assert_array_equal(X, images[5])
    np.testing.assert_array_equal(y, labels[5])


def test_cifar10_hwc_layout(tmp_path):
    # one image: red channel 1, green 2, blue 3 everywhere
    data = np.concatenate([np.full(1024, c, dtype=np.uint8) for c in (1, 2, 3)])
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_pickle(tmp_path / name, {b"data": data[None], b"labels": [7]})
    X, y = load_cifar10(tmp_path, subset="test")
    np.testing.assert_array_equal(X[0, 5, 9], [1, 2, 3])
    np.testing.assert_array_equal(y, [7])


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1") as info:
        load_cifar10(tmp_path / "nope")
    assert "nope" in str(info.value)
    with pytest.raises(FileNotFoundError, match="test_batch"):
        load_cifar10(tmp_path)  # exists but empty
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3") as info:
        load_cifar10(tmp_path)
    assert str(folder) in str(info.value)
    load_cifar10(tmp_path, subset="test")  # test split needs no train batch


def test_cifar10_corrupt(tmp_path):
    write_cifar10(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated") as info:
        load_cifar10(tmp_path, subset="test")
    assert str(path) in str(info.value)

    write_pickle(path, [1, 2, 3])
    with pytest.raises(ValueError, match="dict"):
        load_cifar10(tmp_path, subset="test")

    write_pickle(path, {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match="labels"):
        load_cifar10(tmp_path, subset="test")

    write_pickle(path, {b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]})
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(tmp_path, subset="test")

    write_pickle(path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(ValueError, match="2 images"):
        load_cifar10(tmp_path, subset="test")

    write_pickle(path, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]})
    with pytest.raises(ValueError, match="0..9"):
        load_cifar10(tmp_path, subset="test")


def test_cifar100(tmp_path):
    parts = write_cifar100(tmp_path / "cifar-100-python")
    X, y = load_cifar100(tmp_path)
    assert X.shape == (10, 32, 32, 3) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(
        X, np.concatenate([parts["train"][0], parts["test"][0]])
    )
    np.testing.assert_array_equal(
        y,
        np.concatenate(
            [parts["train"][1]["coarse_labels"], parts["test"][1]["coarse_labels"]]
        ),
    )
    X, y = load_cifar100(tmp_path / "cifar-100-python", coarse=False, subset="test")
    np.testing.assert_array_equal(X, parts["test"][0])
    np.testing.assert_array_equal(y, parts["test"][1]["fine_labels"])
    X, y = load_cifar100(tmp_path, subset="train")
    np.testing.assert_array_equal(y, parts["train"][1]["coarse_labels"])


def test_cifar100_missing(tmp_path):
    write_cifar100(tmp_path)
    (tmp_path / "test").unlink()
    with pytest.raises(FileNotFoundError, match="test"):
        load_cifar100(tmp_path)
    load_cifar100(tmp_path, subset="train")


# ---------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------


def gray(h, w, value):
    return Image.fromarray(np.full((h, w), value, dtype=np.uint8), mode="L")


def rgb(h, w, color):
    return Image.fromarray(np.full((h, w, 3), color, dtype=np.uint8), mode="RGB")


def test_image_folder_grayscale_auto(tmp_path):
    for name in ("b_dogs", "a_cats"):
        (tmp_path / name).mkdir()
    gray(6, 4, 10).save(tmp_path / "a_cats" / "1.png")
    gray(6, 4, 20).save(tmp_path / "a_cats" / "2.png")
    gray(6, 4, 255).convert("1").save(tmp_path / "b_dogs" / "x.png")
    (tmp_path / "b_dogs" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()

    X, y, names = load_image_folder(tmp_path, return_class_names=True)
    assert names == ["a_cats", "b_dogs"]
    assert X.shape == (3, 6, 4) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 1])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(X[:, 0, 0], [10, 20, 255])

    out = load_image_folder(tmp_path)
    assert len(out) == 2


def test_image_folder_mixed_modes_and_sizes(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    rgb(8, 10, (200, 100, 50)).save(tmp_path / "one" / "a.png")  # first -> size
    gray(16, 20, 77).save(tmp_path / "one" / "b.png")
    rgb(5, 5, (0, 255, 0)).save(tmp_path / "two" / "c.jpg", quality=95)
    Image.fromarray(np.full((3, 3, 4), [9, 8, 7, 128], np.uint8), "RGBA").save(
        tmp_path / "two" / "d.png"
    )
    palette = Image.new("P", (10, 8), 1)
    palette.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    palette.save(tmp_path / "two" / "e.gif")

    X, y = load_image_folder(tmp_path)
    assert X.shape == (5, 8, 10, 3) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(X[0], np.broadcast_to([200, 100, 50], (8, 10, 3)))
    np.testing.assert_array_equal(X[1], 77)  # gray broadcast to RGB, resized
    assert np.abs(X[2].astype(int) - [0, 255, 0]).max() <= 3  # JPEG is lossy
    np.testing.assert_array_equal(X[3], np.broadcast_to([9, 8, 7], (8, 10, 3)))
    np.testing.assert_array_equal(X[4], np.broadcast_to([30, 60, 90], (8, 10, 3)))

    Xg, yg = load_image_folder(tmp_path, color_mode="grayscale", image_size=4)
    assert Xg.shape == (5, 4, 4)
    np.testing.assert_array_equal(Xg[1], 77)

    Xr, _ = load_image_folder(tmp_path, image_size=(3, 7), extensions=["PNG"])
    assert Xr.shape == (3, 3, 7, 3)  # only the .png files


def test_image_folder_bilinear_resize(tmp_path):
    (tmp_path / "c").mkdir()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (9, 13), dtype=np.uint8), "L")
    img.save(tmp_path / "c" / "a.png")
    X, _ = load_image_folder(tmp_path, image_size=(5, 7), color_mode="rgb")
    bil = getattr(Image, "Resampling", Image).BILINEAR
    expected = np.asarray(img.convert("RGB").resize((7, 5), bil))
    np.testing.assert_array_equal(X[0], expected)


def test_image_folder_extensions_forms(tmp_path):
    (tmp_path / "c").mkdir()
    gray(2, 2, 1).save(tmp_path / "c" / "a.png")
    gray(2, 2, 2).save(tmp_path / "c" / "b.bmp")
    for ext in (".bmp", "bmp", ["BMP"], (".bmp",)):
        X, _ = load_image_folder(tmp_path, extensions=ext)
        np.testing.assert_array_equal(X[:, 0, 0], [2])


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_image_folder(tmp_path / "nope")
    with pytest.raises(ValueError, match="no class sub-folders") as info:
        load_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value)

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images") as info:
        load_image_folder(tmp_path)
    assert "empty" in str(info.value)

    gray(2, 2, 1).save(tmp_path / "empty" / "a.png")
    bad = tmp_path / "empty" / "b.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(ValueError, match="cannot read image") as info:
        load_image_folder(tmp_path)
    assert str(bad) in str(info.value)

    good = tmp_path / "empty" / "c.png"
    gray(40, 40, 3).save(good)
    bad.write_bytes(good.read_bytes()[:60])  # valid header, truncated data
    with pytest.raises(ValueError, match="b.png"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"color_mode": "rgba"}, "color_mode"),
        ({"image_size": 0}, "image_size"),
        ({"image_size": (4,)}, "image_size"),
        ({"image_size": 2.5}, "image_size"),
        ({"image_size": True}, "image_size"),
        ({"extensions": []}, "extensions"),
        ({"extensions": 3}, "extensions"),
    ],
)
def test_image_folder_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image_folder(tmp_path, **kwargs)


# ---------------------------------------------------------------------------
# load_dataset (by name)
# ---------------------------------------------------------------------------


def test_load_dataset_subset_is_seeded():
    X1, y1, info1 = load_dataset("digits", n_samples=50, seed=3, return_info=True)
    X2, y2, info2 = load_dataset("digits", n_samples=50, seed=3, return_info=True)
    assert X1.shape == (50, 8, 8) and info1["n_classes"] == 10
    np.testing.assert_array_equal(info1["indices"], info2["indices"])
    np.testing.assert_array_equal(X1, X2)
    assert np.all(np.diff(info1["indices"]) > 0)
    X_all, y_all = load_digits_images()
    np.testing.assert_array_equal(X1, X_all[info1["indices"]])
    np.testing.assert_array_equal(y1, y_all[info1["indices"]])
    assert info1["n_total"] == 1797 and info1["data_path"] is None
    _, _, info3 = load_dataset("digits", n_samples=5000, return_info=True)
    assert info3["n_total"] == len(info3["indices"]) == 1797
    X4, y4 = load_dataset("digits")
    assert X4.shape == (1797, 8, 8) and y4.shape == (1797,)
    _, _, info5 = load_dataset("digits", n_samples=50, seed=4, return_info=True)
    assert not np.array_equal(info1["indices"], info5["indices"])


def test_load_dataset_folder_and_cifar(tmp_path):
    for name, value in (("b", 200), ("a", 10)):
        (tmp_path / "shapes" / name).mkdir(parents=True)
        for i in range(3):
            gray(6, 4, value + i).save(tmp_path / "shapes" / name / f"{i}.png")
    X, y, info = load_dataset(
        "folder", tmp_path / "shapes", image_size=8, return_info=True
    )
    assert X.shape == (6, 8, 8) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])
    assert info["n_classes"] == 2 and info["data_path"] == str(tmp_path / "shapes")

    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder, n=1)
    X, y = load_dataset("cifar10", tmp_path, n_samples=5, seed=1)
    X_all, y_all = load_cifar10(tmp_path)
    assert X.shape == (5, 32, 32, 3)
    assert set(map(bytes, X)) <= set(map(bytes, X_all))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="mnist"), "name must be one of"),
        (dict(name="cifar10"), "needs a data_path"),
        (dict(name="folder"), "needs a data_path"),
        (dict(name="digits", image_size=8), "image_size is only used"),
        (dict(name="digits", n_samples=0), "n_samples must be a positive int"),
        (dict(name="digits", n_samples=2.5), "n_samples must be a positive int"),
    ],
)
def test_load_dataset_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)
    assert "digits" in DATASET_NAMES


def test_load_dataset_real_fashion_mnist():
    if not Path(FASHION_MNIST_PATH).is_dir():
        pytest.skip(
            f"{FASHION_MNIST_PATH} not found (apt-get install dataset-fashion-mnist)"
        )
    X, y, info = load_dataset("fashion-mnist", n_samples=300, seed=0, return_info=True)
    assert X.shape == (300, 28, 28) and X.dtype == np.uint8
    assert info["n_total"] == 70000 and info["n_classes"] == 10
    assert info["data_path"] == FASHION_MNIST_PATH
    X_all, y_all = load_fashion_mnist()
    np.testing.assert_array_equal(X, X_all[info["indices"]])
    np.testing.assert_array_equal(y, y_all[info["indices"]])
