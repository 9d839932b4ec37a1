"""Tests for skspice.inputs.as_model_input."""

import numpy as np
import pytest
from PIL import Image

from skspice.inputs import InputProfile, as_model_input


def _uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_gray_uint8_images():
    X = _uint8((4, 5, 6))
    X[0, 0, 0], X[0, 0, 1] = 0, 255
    data, prof = as_model_input(X)
    assert data.shape == (4, 1, 5, 6)
    assert data.dtype == np.float32
    np.testing.assert_allclose(data[:, 0], X / 255.0, rtol=1e-6)
    assert data[0, 0, 0, 0] == 0.0 and data[0, 0, 0, 1] == 1.0
    assert prof == InputProfile("image", (1, 5, 6))
    assert prof.kind == "image"
    assert prof.n_features == 30
    assert prof.image_size == 5


def test_rgb_channels_last_to_channels_first():
    X = _uint8((3, 4, 5, 3))
    data, prof = as_model_input(X)
    assert data.shape == (3, 3, 4, 5)
    assert data.flags["C_CONTIGUOUS"]
    for c in range(3):
        np.testing.assert_allclose(data[:, c], X[..., c] / 255.0, rtol=1e-6)
    assert prof.shape == (3, 4, 5)


def test_single_channel_last_axis():
    X = _uint8((2, 4, 4, 1))
    data, prof = as_model_input(X)
    assert data.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(data[:, 0], X[..., 0] / 255.0, rtol=1e-6)
    assert prof.shape == (1, 4, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_kept_in_unit_range(dtype):
    X = np.random.default_rng(1).random((3, 4, 4)).astype(dtype)
    X[0, 0, 0], X[0, 0, 1] = 0.0, 1.0
    data, _ = as_model_input(X)
    assert data.dtype == np.float32
    np.testing.assert_allclose(data[:, 0], X, rtol=1e-6)


def test_integer_images_of_other_dtypes_and_bool():
    X = np.array([[[0, 255], [128, 1]]], dtype=np.int64)
    data, _ = as_model_input(X)
    np.testing.assert_allclose(data[0, 0], X[0] / 255.0, rtol=1e-6)
    B = np.array([[[True, False], [False, True]]])
    data, _ = as_model_input(B)
    np.testing.assert_array_equal(data[0, 0], [[1.0, 0.0], [0.0, 1.0]])


def test_list_of_gray_pil_images():
    arrays = [_uint8((5, 7), seed=i) for i in range(3)]
    images = [Image.fromarray(a, mode="L") for a in arrays]
    data, prof = as_model_input(images)
    assert data.shape == (3, 1, 5, 7)  # PIL size is (width, height) = (7, 5)
    np.testing.assert_allclose(data[:, 0], np.stack(arrays) / 255.0, rtol=1e-6)
    assert prof.shape == (1, 5, 7)


def test_list_of_rgb_pil_images():
    arrays = [_uint8((4, 6, 3), seed=i) for i in range(2)]
    images = [Image.fromarray(a, mode="RGB") for a in arrays]
    data, prof = as_model_input(tuple(images))
    assert data.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(
        data, np.stack(arrays).transpose(0, 3, 1, 2) / 255.0, rtol=1e-6
    )
    assert prof.shape == (3, 4, 6)


def test_mixed_gray_and_rgb_pil_images_become_rgb():
    gray = Image.fromarray(_uint8((4, 4)), mode="L")
    rgb = Image.fromarray(_uint8((4, 4, 3), seed=1), mode="RGB")
    data, prof = as_model_input([gray, rgb])
    assert prof.shape == (3, 4, 4)
    # The gray image is replicated in the three channels.
    np.testing.assert_allclose(data[0, 0], data[0, 1])
    np.testing.assert_allclose(data[0, 0], data[0, 2])


def test_mixed_pil_sizes_raise():
    images = [Image.new("L", (4, 4)), Image.new("L", (5, 4))]
    with pytest.raises(ValueError, match="different sizes"):
        as_model_input(images)


def test_pil_list_mixed_with_arrays_raises():
    with pytest.raises(TypeError, match="PIL images only"):
        as_model_input([Image.new("L", (4, 4)), np.zeros((4, 4))])


def test_tabular_rows():
    X = np.array([[1.5, -2.0, 300.0], [0.0, 4.0, -1.0]])
    data, prof = as_model_input(X)
    assert data.dtype == np.float32
    np.testing.assert_allclose(data, X)
    assert prof == InputProfile("tabular", (3,))
    assert prof.image_size is None
    assert prof.n_features == 3


def test_tabular_rows_from_list():
    data, prof = as_model_input([[1, 2], [3, 4], [5, 6]])
    assert data.dtype == np.float32 and data.shape == (3, 2)
    assert prof.kind == "tabular"


@pytest.mark.parametrize(
    "image_shape,expected", [((4, 2), (1, 4, 2)), ((2, 2, 2), None)]
)
def test_image_shape_reshapes_rows(image_shape, expected):
    X = _uint8((3, 8))
    if expected is None:  # C=2 channels is not an image layout
        with pytest.raises(ValueError, match="C=2"):
            as_model_input(X, image_shape=image_shape)
        return
    data, prof = as_model_input(X, image_shape=image_shape)
    assert data.shape == (3,) + expected
    np.testing.assert_allclose(data[:, 0], X.reshape(3, 4, 2) / 255.0, rtol=1e-6)
    assert prof.kind == "image"


def test_image_shape_with_channels_last():
    X = _uint8((2, 12))
    data, prof = as_model_input(X, image_shape=(2, 2, 3))
    assert prof.shape == (3, 2, 2)
    np.testing.assert_allclose(
        data, X.reshape(2, 2, 2, 3).transpose(0, 3, 1, 2) / 255.0, rtol=1e-6
    )


def test_image_shape_size_mismatch_raises():
    with pytest.raises(ValueError, match="holds 9 values"):
        as_model_input(np.zeros((2, 8)), image_shape=(3, 3))


def test_profile_match_and_mismatch():
    _, prof = as_model_input(_uint8((2, 4, 4)))
    data, again = as_model_input(_uint8((5, 4, 4), seed=3), profile=prof)
    assert again == prof and data.shape == (5, 1, 4, 4)
    with pytest.raises(ValueError, match="fitted on"):
        as_model_input(_uint8((2, 5, 4)), profile=prof)
    with pytest.raises(ValueError, match="fitted on"):
        as_model_input(np.zeros((2, 16)), profile=prof)
    # Rows read as images with the right shape are accepted.
    data, _ = as_model_input(np.zeros((2, 16)), image_shape=(4, 4), profile=prof)
    assert data.shape == (2, 1, 4, 4)


@pytest.mark.parametrize(
    "X,exc,fragment",
    [
        (np.full((2, 3, 3), np.nan), ValueError, "NaN or infinity"),
        (np.full((2, 3, 3), np.inf), ValueError, "NaN or infinity"),
        (np.zeros(5), ValueError, "1-D"),
        (np.zeros((2, 3, 3, 1, 1)), ValueError, "5 dimensions"),
        (np.zeros((2, 3, 3, 2)), ValueError, "C=2"),
        (np.zeros((2, 3, 3, 4)), ValueError, "C=4"),
        (np.zeros((0, 3, 3)), ValueError, "empty"),
        (np.zeros((2, 0)), ValueError, "empty"),
        ([], ValueError, "empty"),
        (np.array([[["a"]]]), TypeError, "dtype"),
        (np.empty((2, 2, 2), dtype=object), TypeError, "dtype object"),
        (np.full((2, 3, 3), 1.5), ValueError, "expected floats in [0, 1]"),
        (np.full((2, 3, 3), -0.1), ValueError, "expected floats in [0, 1]"),
        (np.full((2, 3, 3), 256, dtype=np.int32), ValueError, "[0, 255]"),
        (np.full((2, 3, 3), -1, dtype=np.int16), ValueError, "[0, 255]"),
        (np.array(3.0), ValueError, "empty"),
    ],
)
def test_invalid_input_errors(X, exc, fragment):
    with pytest.raises(exc) as info:
        as_model_input(X)
    assert fragment in str(info.value)


def test_complex_input_raises():
    # scikit-learn raises ValueError for complex data; a TypeError is fine too.
    with pytest.raises((TypeError, ValueError), match="complex"):
        as_model_input(np.zeros((2, 3, 3), dtype=complex))


def test_argname_in_messages():
    with pytest.raises(ValueError, match="^X_val is 1-D"):
        as_model_input(np.zeros(3), argname="X_val")


def test_tabular_nan_raises():
    X = np.array([[1.0, np.nan], [0.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        as_model_input(X)


def test_sparse_input_raises():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="sparse"):
        as_model_input(sparse.csr_matrix(np.eye(3)))


@pytest.mark.parametrize(
    "X,kwargs",
    [
        (np.random.default_rng(0).random((3, 4, 4)).astype(np.float32), {}),
        (np.random.default_rng(0).random((3, 4, 4, 3)), {}),
        (_uint8((3, 4, 4)), {}),
        (np.random.default_rng(0).random((3, 5)).astype(np.float32), {}),
        (
            np.random.default_rng(0).random((3, 4)).astype(np.float32),
            {"image_shape": (2, 2)},
        ),
    ],
)
def test_caller_array_is_not_modified(X, kwargs):
    original = X.copy()
    data, _ = as_model_input(X, **kwargs)
    data += 1  # writing to the output must not reach the caller either
    np.testing.assert_array_equal(X, original)
    assert not np.shares_memory(data, X)


def test_float_mode_pil_images_keep_their_values():
    # PIL "F" images hold floats; in [0, 1] they must read like a float array.
    a = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)
    data, prof = as_model_input([Image.fromarray(a, mode="F")])
    assert prof.shape == (1, 2, 2)
    ref, _ = as_model_input(a[None])
    np.testing.assert_allclose(data, ref, atol=1 / 255)


def test_16bit_pil_images_are_not_silently_clipped():
    # Distinct 16-bit intensities must stay distinct (or be refused clearly).
    b = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    try:
        data, _ = as_model_input([Image.fromarray(b)])
    except ValueError:
        return
    flat = data.ravel()
    assert flat[0] < flat[1] < flat[2] < flat[3]
