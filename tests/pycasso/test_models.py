"""Generator models an operator brings: tiny Keras and ONNX networks built here, served, refused, tiled."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from pycasso.errors import InvalidParams
from pycasso.models import ModelInfo, Models, scan, tile_plan

from model_files import CONV_B, CONV_W, LATENT_DIM, RNG, onnx_conv, onnx_latent, save_onnx

# --- building the models -------------------------------------------------------------------------


def onnx_latent_nchw(path: Path) -> None:
    """PyTorch's DCGAN layout: noise (N, 16, 1, 1) -> Flatten -> MatMul -> (N, 3, 8, 12) -> Tanh."""
    matrix = RNG.standard_normal((LATENT_DIM, 3 * 8 * 12)).astype(np.float32)
    save_onnx(
        path,
        [
            helper.make_node("Flatten", ["z"], ["f"]),
            helper.make_node("MatMul", ["f", "m"], ["h"]),
            helper.make_node("Reshape", ["h", "shape"], ["r"]),
            helper.make_node("Tanh", ["r"], ["y"]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", LATENT_DIM, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 12])],
        [numpy_helper.from_array(matrix, "m"), numpy_helper.from_array(np.array([-1, 3, 8, 12], np.int64), "shape")],
    )


def keras_models(folder: Path) -> None:
    from pycasso import _tf  # noqa: F401  (first, as pycasso.models does: it sets TensorFlow's threads)

    keras = importlib.import_module("keras")

    keras.utils.set_random_seed(3)
    photo = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(photo)
    image = keras.Model(photo, keras.layers.Conv2D(3, 1, activation="tanh")(features))
    image.save(folder / "keras-image.keras")
    image.save(folder / "keras-image-h5.h5")

    # Three stride-2 steps down and up: it needs a multiple of 8, which the test runs find.
    x = photo
    for filters in (4, 8, 8):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    for filters in (8, 4, 3):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="tanh")(x)
    keras.Model(photo, x).save(folder / "keras-strided.keras")

    noise = keras.Input((LATENT_DIM,))
    x = keras.layers.Dense(4 * 8 * 8, activation="relu")(noise)
    x = keras.layers.Reshape((4, 8, 8))(x)
    x = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh")(x)  # (8, 16, 3)
    keras.Model(noise, x).save(folder / "keras-latent.keras")

    with_code = keras.Model(photo, keras.layers.Lambda(lambda t: t * 2)(photo))
    with_code.save(folder / "lambda.keras")
    with_code.save(folder / "lambda-h5.h5")

    # A layer Keras would look up in another package: the config is all it takes to refuse it.
    with zipfile.ZipFile(folder / "keras-image.keras") as good, zipfile.ZipFile(folder / "custom.keras", "w") as bad:
        for entry in good.infolist():
            data = good.read(entry)
            if entry.filename == "config.json":
                config = json.loads(data)
                config["config"]["layers"][1].update(module="mypackage.layers", class_name="Swirl")
                data = json.dumps(config).encode()
            bad.writestr(entry, data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    keras_models(folder)
    onnx_conv(folder / "onnx-image.onnx")
    onnx_conv(folder / "fixed.onnx", fixed=(16, 24))
    onnx_latent(folder / "onnx-latent.onnx")
    onnx_latent_nchw(folder / "dcgan.onnx")
    onnx_conv(folder / "styled.onnx")
    (folder / "styled.json").write_text(json.dumps({"name": "monet", "range": [0, 1], "description": "Water lilies"}))
    onnx_conv(folder / "sized.onnx")
    (folder / "sized.json").write_text(json.dumps({"input_size": [20, 30], "multiple": 2}))
    # Refused ones:
    noise = np.random.default_rng(99)
    (folder / "broken.onnx").write_bytes(noise.bytes(400))
    (folder / "corrupt.keras").write_bytes(noise.bytes(400))
    onnx_conv(folder / "mono.onnx", channels=1)
    onnx_conv(folder / "zz-dup.onnx")
    (folder / "zz-dup.json").write_text(json.dumps({"name": "onnx-image"}))
    onnx_conv(folder / "badname.onnx")
    (folder / "badname.json").write_text(json.dumps({"name": "../etc/passwd"}))
    onnx_conv(folder / "typo.onnx")
    (folder / "typo.json").write_text(json.dumps({"ragne": [0, 1]}))
    onnx_conv(folder / "wrongkind.onnx")
    (folder / "wrongkind.json").write_text(json.dumps({"kind": "latent"}))
    (folder / "notes.txt").write_text("not a model")
    return folder


@pytest.fixture(scope="module")
def models(folder) -> Models:
    return Models(folder)


@pytest.fixture(scope="module")
def infos(models) -> dict[str, ModelInfo]:
    return {info.file: info for info in models.list()}


@pytest.fixture
def photo() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)


def by_hand(photo: np.ndarray, low: float, high: float) -> np.ndarray:
    """What the ONNX 1×1 conv + tanh model paints, in numpy."""
    x = low + (high - low) * photo.astype(np.float64) / 255
    y = np.tanh(x @ CONV_W.T.astype(np.float64) + CONV_B)
    return np.clip(np.rint((y - low) * 255 / (high - low)), 0, 255).astype(np.uint8)


# --- listing -------------------------------------------------------------------------------------


USABLE = {  # file: (name, format, kind, range, latent_dim, input_size)
    "keras-image.keras": ("keras-image", "keras", "image", (-1.0, 1.0), None, None),
    "keras-image-h5.h5": ("keras-image-h5", "keras", "image", (-1.0, 1.0), None, None),
    "keras-strided.keras": ("keras-strided", "keras", "image", (-1.0, 1.0), None, None),
    "keras-latent.keras": ("keras-latent", "keras", "latent", (-1.0, 1.0), LATENT_DIM, None),
    "onnx-image.onnx": ("onnx-image", "onnx", "image", (-1.0, 1.0), None, None),
    "fixed.onnx": ("fixed", "onnx", "image", (-1.0, 1.0), None, (16, 24)),
    "onnx-latent.onnx": ("onnx-latent", "onnx", "latent", (0.0, 1.0), LATENT_DIM, None),
    "dcgan.onnx": ("dcgan", "onnx", "latent", (-1.0, 1.0), LATENT_DIM, None),
    "styled.onnx": ("monet", "onnx", "image", (0.0, 1.0), None, None),
    "sized.onnx": ("sized", "onnx", "image", (-1.0, 1.0), None, (20, 30)),
}


@pytest.mark.parametrize("file", sorted(USABLE))
def test_each_usable_model_is_listed_with_its_kind_format_and_range(infos, file):
    info = infos[file]
    assert info.problem is None
    assert (info.name, info.format, info.kind, info.value_range, info.latent_dim, info.input_size) == USABLE[file]


REFUSED = {  # file: words its problem must contain
    "broken.onnx": "not an ONNX model",
    "corrupt.keras": "not a Keras archive",
    "lambda.keras": "Lambda layer",
    "lambda-h5.h5": "Lambda layer",
    "custom.keras": "custom object mypackage.layers.Swirl",
    "mono.onnx": "1 channel",
    "zz-dup.onnx": "name already used by onnx-image.onnx",
    "badname.onnx": "'../etc/passwd' is not a model name",
    "typo.onnx": "unknown key(s) ragne",
    "wrongkind.onnx": "the sidecar says kind 'latent'",
}


@pytest.mark.parametrize("file", sorted(REFUSED))
def test_a_bad_model_is_listed_with_its_reason_and_the_others_still_work(infos, models, photo, file):
    info = infos[file]
    assert info.problem and REFUSED[file] in info.problem
    assert models.paint("onnx-image", photo, 40, 0).shape == (40, 60, 3)


def test_the_list_is_sorted_by_name_and_plain_json(models, folder):
    listed = models.list()
    assert [i.name for i in listed] == sorted(i.name for i in listed)
    assert {i.file for i in listed} == set(USABLE) | set(REFUSED)  # notes.txt and the sidecars are no models
    plain = json.loads(json.dumps([i.to_json() for i in listed]))
    monet = next(p for p in plain if p["name"] == "monet")
    assert monet == {
        "name": "monet",
        "file": "styled.onnx",
        "format": "onnx",
        "kind": "image",
        "value_range": [0.0, 1.0],
        "input_size": None,
        "latent_dim": None,
        "description": "Water lilies",
        "problem": None,
        "ok": True,
    }
    assert next(p for p in plain if p["file"] == "mono.onnx")["ok"] is False


def test_scan_checks_the_same_without_serving(folder, models):
    assert scan(folder) == models.list()


def test_no_folder_or_a_missing_one_has_no_models(tmp_path):
    assert Models(None).list() == []
    assert Models(tmp_path / "absent").list() == []


def test_model_limits_refuse_what_is_over_them(folder):
    few = {i.file: i.problem for i in Models(folder, max_models=1, max_bytes=10**9).list()}
    assert few["corrupt.keras"] is not None  # the first file in name order is the one tried
    assert "more model files than the limit of 1" in (few["onnx-image.onnx"] or "")
    tiny = Models(folder, max_bytes=10).list()
    assert all(i.problem is not None for i in tiny)
    assert any("over the limit of 10" in (i.problem or "") for i in tiny)


def test_an_onnx_only_folder_does_not_import_tensorflow(folder, tmp_path):
    shutil.copy(folder / "onnx-image.onnx", tmp_path / "only.onnx")
    script = (
        "import sys; from pycasso.models import Models; "
        f"m = Models({str(tmp_path)!r}); assert [i.problem for i in m.list()] == [None], m.list(); "
        "print(sorted(n for n in ('tensorflow', 'keras') if n in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


# --- painting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["keras-image", "keras-image-h5", "keras-strided", "onnx-image", "fixed", "sized", "monet"]
)
def test_an_image_model_paints_at_the_painting_size_the_same_each_time(models, photo, name):
    first = models.paint(name, photo, 40, 0)
    assert first.shape == (40, 60, 3) and first.dtype == np.uint8
    assert np.array_equal(first, models.paint(name, photo, 40, 5))
    assert first.std() > 0  # not a blank


def test_the_keras_and_h5_files_of_one_network_paint_alike(models, photo):
    assert np.array_equal(models.paint("keras-image", photo, 48, 0), models.paint("keras-image-h5", photo, 48, 0))


@pytest.mark.parametrize(("name", "low", "high"), [("onnx-image", -1.0, 1.0), ("monet", 0.0, 1.0)])
def test_pixels_are_scaled_to_the_model_range_and_back(models, photo, name, low, high):
    painted = models.paint(name, photo, 60, 0)  # the photo's own size: no resizing
    expected = by_hand(photo, low, high)
    assert np.abs(painted.astype(int) - expected).max() <= 1


@pytest.mark.parametrize(
    ("name", "shape"), [("keras-latent", (40, 80, 3)), ("onnx-latent", (40, 40, 3)), ("dcgan", (40, 60, 3))]
)
def test_a_latent_model_paints_from_its_seed(models, name, shape):
    first = models.paint(name, None, 40, 11)
    assert first.shape == shape and first.dtype == np.uint8  # the model's aspect ratio, `size` tall
    assert np.array_equal(first, models.paint(name, None, 40, 11))
    assert not np.array_equal(first, models.paint(name, None, 40, 12))


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("keras-latent", np.zeros((40, 40, 3), np.uint8), "paints from noise"),
        ("onnx-image", None, "content is required"),
        ("onnx-image", np.zeros((40, 40), np.uint8), "(H, W, 3)"),
        ("onnx-image", np.zeros((40, 40, 3), np.float32), "uint8"),
        ("nonesuch", None, "no such model"),
        ("mono", None, "cannot be used"),
        ("lambda", None, "Lambda layer"),
    ],
)
def test_wrong_use_raises_invalid_params_that_says_why(models, name, content, words):
    with pytest.raises(InvalidParams, match=rf"model '{name}'.*") as raised:
        models.paint(name, content, 40, 0)
    assert words in str(raised.value)


# --- tiles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"),
    [(100, 130, 24, 6), (24, 200, 24, 8), (993, 40, 512, 32), (50, 51, 16, 0), (20, 20, 64, 8)],
)
def test_tiles_cover_every_pixel_and_their_weights_sum_to_one(height, width, tile, overlap):
    covered = np.zeros((height, width), int)
    total = np.zeros((height, width))
    for t in tile_plan(height, width, tile, overlap):
        assert t.height <= tile and t.width <= tile and t.weight.shape == (t.height, t.width)
        assert (t.weight >= 0).all()
        covered[t.top : t.top + t.height, t.left : t.left + t.width] += 1
        total[t.top : t.top + t.height, t.left : t.left + t.width] += t.weight
    assert covered.min() >= 1
    assert np.allclose(total, 1.0, atol=1e-6)


def test_neighbouring_tiles_overlap_by_at_least_the_overlap():
    lefts = sorted({t.left for t in tile_plan(10, 100, 24, 8)})
    assert lefts[0] == 0 and all(b - a <= 24 - 8 for a, b in zip(lefts, lefts[1:], strict=False))


def test_a_tiled_painting_equals_the_untiled_one_for_a_per_pixel_model(folder, tmp_path, photo):
    shutil.copy(folder / "onnx-image.onnx", tmp_path / "onnx-image.onnx")
    whole = Models(tmp_path).paint("onnx-image", photo, 60, 0)
    tiled = Models(tmp_path, max_side=32, tile=24, overlap=6).paint("onnx-image", photo, 60, 0)
    assert tiled.shape == whole.shape == (60, 90, 3)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_a_tiled_keras_painting_differs_from_the_whole_only_near_seams(folder, tmp_path, photo):
    shutil.copy(folder / "keras-image.keras", tmp_path / "keras-image.keras")
    shutil.copy(folder / "keras-strided.keras", tmp_path / "keras-strided.keras")
    whole = Models(tmp_path)
    tiled = Models(tmp_path, max_side=32, tile=28, overlap=6)  # tiles of 24 px for the multiple-of-8 network
    painted = tiled.paint("keras-image", photo, 60, 0)
    assert painted.shape == (60, 90, 3)
    assert np.abs(painted.astype(int) - whole.paint("keras-image", photo, 60, 0)).mean() < 2
    assert tiled.paint("keras-strided", photo, 60, 0).shape == (60, 90, 3)


def test_settings_that_cannot_tile_are_refused():
    with pytest.raises(ValueError, match="overlap -1"):
        Models(None, overlap=-1)
    with pytest.raises(ValueError, match="tile 8"):
        Models(None, tile=8)
    assert Models(None, max_side=100, tile=200).tile == 100  # a tile is never larger than a whole run
