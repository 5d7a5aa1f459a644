"""Training generators that the `model` engine serves (issue 15): CycleGAN and DCGAN, step by step.

    trainer = Trainer.resume(folder, photos, paintings) or Trainer.create("cyclegan", params, photos, paintings, folder)
    while not trainer.done:
        losses = trainer.step()        # {"generator": ..., "discriminator": ..., "cycle": ..., "identity": ...}
        if trainer.step_index % 100 == 0:
            preview = trainer.sample()  # (H, W, 3) uint8
            trainer.checkpoint()        # atomic; only the latest is kept
    trainer.export(models_dir, "monet")  # monet.keras + monet.json, which pycasso.models serves

Two recipes, as in their papers:

- cyclegan (Zhu et al., arXiv 1703.10593): photos (domain A) <-> paintings (domain B). ResNet
  generators c7s1-f, d2f, d4f, R4f × n_res (6 up to 128 px, 9 above), u2f, uf, c7s1-3 with tanh;
  70×70 PatchGAN discriminators C64-C128-C256-C512 (scaled by `filters`), LeakyReLU 0.2; instance
  normalisation without learnt scale and shift, as in the reference code (Keras' LayerNormalization
  over the two spatial axes, a built-in layer); weights drawn from N(0, 0.02).
  LSGAN losses, cycle-consistency L1 × cycle_weight, identity L1 × identity_weight; Adam; the
  discriminators see a history of 50 generated images (the paper's image pool); the learning rate
  stays for the first half of the steps and falls linearly to zero over the second half. Data: each
  image's shorter side is scaled to 286/256 × image_size (the paper's 286 px for 256 px crops, keeping
  the aspect ratio, so a small image is upscaled), then random image_size² crops, random horizontal
  flips, values in [-1, 1]. One photo, drawn from the seed, is held out of training: `sample()`
  translates it.
- dcgan (Radford et al., arXiv 1511.06434): a generator Dense(4·4·8f) -> BN/ReLU -> stride-2
  transposed convolutions up to image_size (16, 32 or 64) with tanh; a discriminator of stride-2
  convolutions with LeakyReLU 0.2 (batch norm except on the first) -> Dense(1); binary cross-entropy
  from logits; Adam; both networks updated from the same forward pass. Data: each image cropped to its
  centre square, resized to image_size², random horizontal flips. `sample()` is a 4×4 grid from
  fixed noise.

Padding: the paper's generator uses reflection padding, which Keras has no layer for. A custom layer
would make the exported `.keras` file need a custom object, which `pycasso.models` refuses by design
(a model file must not run code), so every convolution here pads with zeros (`padding="same"`).

Reproducible and resumable: every random draw of step k (crops, flips, noise, the image pool's
choices) comes from `numpy.random.default_rng([seed, stream, k])`, the order images are taken in
from one permutation per epoch drawn from (seed, stream, epoch), and the weights' initial values from
the seed, so a resumed run takes the same batches as an uninterrupted one. A checkpoint
holds every network's weights (batch-norm statistics too), the optimisers' states, the image pools,
the step and the seed; a resumed run continues bit for bit on a CPU (measured: the same losses to the
last bit, same machine and thread settings). GPU kernels (cuDNN) may sum in another order from run to
run, so there a resumed run is the same run within float rounding, not bit for bit.
Checkpoints are written into a temp folder beside the final one and renamed into place, so a kill
mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np

from pycasso import imaging
from pycasso._tf import tf
from pycasso.models import MAX_NAME, NAME_PATTERN

Kind = Literal["cyclegan", "dcgan"]
KINDS: tuple[Kind, ...] = ("cyclegan", "dcgan")
# What `Trainer.step()` returns, per kind.
LOSSES: dict[Kind, tuple[str, ...]] = {
    "cyclegan": ("generator", "discriminator", "cycle", "identity"),
    "dcgan": ("generator", "discriminator"),
}
DCGAN_SIZES = (16, 32, 64)
POOL_SIZE = 50  # generated images the CycleGAN discriminators are shown from (the paper's history)
LOAD_SCALE = 286 / 256  # CycleGAN: shorter side before cropping, per pixel of the crop
GRID = 4  # DCGAN samples: a GRID × GRID grid
CHECKPOINT_FORMAT = 1
INIT_STDDEV = 0.02

# Independent random streams: step k of stream s draws from default_rng([seed, s, k]).
_INIT, _ORDER_A, _ORDER_B, _AUGMENT, _POOL, _NOISE, _SAMPLE, _HELD_OUT = range(1, 9)
_CHECKPOINT = re.compile(r"^step-(\d+)$")
_TEMP_PREFIX = ".writing-"


# --- parameters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingParams:
    """A training run's settings; `read` fills the defaults and refuses nonsense with ValueError."""

    steps: int
    batch_size: int
    image_size: int
    learning_rate: float
    beta1: float
    cycle_weight: float  # cyclegan only
    identity_weight: float  # cyclegan only; default half the cycle weight, as in the paper
    latent_dim: int  # dcgan only
    filters: int  # f: the first layer's channels, doubled at each step down
    seed: int

    @classmethod
    def defaults(cls, kind: Kind) -> dict[str, Any]:
        common = {"steps": 2000, "learning_rate": 2e-4, "beta1": 0.5, "filters": 64, "seed": 0}
        common |= {"cycle_weight": 10.0, "latent_dim": 100}
        if kind == "cyclegan":  # one image pair per step at 256 px, as in the paper
            return common | {"batch_size": 1, "image_size": 256}
        return common | {"batch_size": 64, "image_size": 32}  # CIFAR's size

    @classmethod
    def read(cls, kind: str, params: Mapping[str, Any] | None = None) -> TrainingParams:
        """`params` (a plain dict) checked for `kind`. A key that is missing or None takes the kind's
        default (`painting.training.TrainingParams.to_engine()` sends None for a key the kind does
        not read, e.g. latent_dim for a cyclegan)."""
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
        given = {key: value for key, value in (params or {}).items() if value is not None}
        defaults = cls.defaults(kind)
        unknown = sorted(set(given) - set(defaults) - {"identity_weight"})
        if unknown:
            known = ", ".join(sorted([*defaults, "identity_weight"]))
            raise ValueError(f"unknown training parameter(s) {', '.join(unknown)} (known: {known})")
        values = defaults | given
        steps = _whole(values, "steps", 1, 10_000_000)
        batch_size = _whole(values, "batch_size", 1, 512)
        image_size = _whole(values, "image_size", 16, 512)
        if kind == "cyclegan" and image_size % 4:
            raise ValueError(f"image_size {image_size}: a CycleGAN's crops must be a multiple of 4 px (two halvings)")
        if kind == "dcgan" and image_size not in DCGAN_SIZES:
            raise ValueError(f"image_size {image_size}: a DCGAN makes {', '.join(map(str, DCGAN_SIZES))} px images")
        learning_rate = _real(values, "learning_rate", 0.0, 0.1, low_open=True)
        beta1 = _real(values, "beta1", 0.0, 1.0, high_open=True)
        cycle_weight = _real(values, "cycle_weight", 0.0, 1000.0)
        values.setdefault("identity_weight", 0.5 * cycle_weight)
        identity_weight = _real(values, "identity_weight", 0.0, 1000.0)
        latent_dim = _whole(values, "latent_dim", 1, 1024)
        filters = _whole(values, "filters", 1, 256)
        seed = _whole(values, "seed", 0, 2**63 - 1)
        return cls(
            steps,
            batch_size,
            image_size,
            learning_rate,
            beta1,
            cycle_weight,
            identity_weight,
            latent_dim,
            filters,
            seed,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _whole(values: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
        raise ValueError(f"{key} {value!r}: must be a whole number from {low} to {high}")
    return int(value)


def _real(
    values: Mapping[str, Any], key: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> float:
    value = values[key]
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    number = float(value) if ok else math.nan
    if not (
        math.isfinite(number)
        and (low < number if low_open else low <= number)
        and (number < high if high_open else number <= high)
    ):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{key} {value!r}: must be a number in {interval}")
    return number


# --- networks --------------------------------------------------------------------------------------


def _keras() -> Any:
    """Keras, imported after pycasso's TensorFlow settings (`pycasso._tf`, imported above) have taken."""
    return importlib.import_module("keras")


class _Init:
    """N(0, 0.02) kernel initialisers, each with its own seed drawn from one stream: a seed makes the
    same network without touching Keras' or numpy's global random state."""

    def __init__(self, seed: int, network: int) -> None:
        self._rng = np.random.default_rng([seed, _INIT, network])

    def __call__(self) -> Any:
        return _keras().initializers.RandomNormal(0.0, INIT_STDDEV, seed=int(self._rng.integers(2**31 - 1)))


def _instance_norm(x: Any) -> Any:
    """Instance normalisation without a learnt scale and shift (the reference code's `affine=False`):
    each image's channels normalised over their H × W, i.e. Keras' LayerNormalization over axes 1, 2."""
    return _keras().layers.LayerNormalization(axis=[1, 2], center=False, scale=False, epsilon=1e-5)(x)


def resnet_blocks(image_size: int) -> int:
    """The paper's choice: 6 residual blocks for 128 px training images, 9 for 256 px and above."""
    return 6 if image_size <= 128 else 9


def cyclegan_generator(filters: int = 64, n_res: int = 9, *, seed: int = 0, name: str = "generator") -> Any:
    """The CycleGAN ResNet generator, fully convolutional: (N, H, W, 3) in [-1, 1] -> the same shape,
    H and W multiples of 4."""
    keras = _keras()
    layers = keras.layers
    init = _Init(seed, 0)

    def conv(x: Any, channels: int, kernel: int, stride: int, *, up: bool = False) -> Any:
        layer = layers.Conv2DTranspose if up else layers.Conv2D
        return layer(channels, kernel, strides=stride, padding="same", use_bias=False, kernel_initializer=init())(x)

    def relu(x: Any) -> Any:
        return layers.ReLU()(x)

    f = filters
    photo = keras.Input((None, None, 3), name="photo")
    x = relu(_instance_norm(conv(photo, f, 7, 1)))  # c7s1-f
    x = relu(_instance_norm(conv(x, 2 * f, 3, 2)))  # d2f: (N, H/2, W/2, 2f)
    x = relu(_instance_norm(conv(x, 4 * f, 3, 2)))  # d4f: (N, H/4, W/4, 4f)
    for _ in range(n_res):  # R4f
        y = relu(_instance_norm(conv(x, 4 * f, 3, 1)))
        x = layers.Add()([x, _instance_norm(conv(y, 4 * f, 3, 1))])
    x = relu(_instance_norm(conv(x, 2 * f, 3, 2, up=True)))  # u2f
    x = relu(_instance_norm(conv(x, f, 3, 2, up=True)))  # uf
    out = layers.Conv2D(3, 7, padding="same", activation="tanh", kernel_initializer=init())(x)  # c7s1-3
    return keras.Model(photo, out, name=name)


def patchgan_discriminator(filters: int = 64, *, seed: int = 0, name: str = "discriminator") -> Any:
    """The 70×70 PatchGAN: (N, H, W, 3) -> (N, H/8, W/8, 1) real-or-fake scores, one per patch."""
    keras = _keras()
    layers = keras.layers
    init = _Init(seed, 1)
    image = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(filters, 4, strides=2, padding="same", kernel_initializer=init())(image)  # C64, no norm
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    for multiple, stride in ((2, 2), (4, 2), (8, 1)):  # C128, C256, C512
        x = layers.Conv2D(
            filters * multiple, 4, strides=stride, padding="same", use_bias=False, kernel_initializer=init()
        )(x)
        x = layers.LeakyReLU(negative_slope=0.2)(_instance_norm(x))
    out = layers.Conv2D(1, 4, padding="same", kernel_initializer=init())(x)
    return keras.Model(image, out, name=name)


def dcgan_generator(
    latent_dim: int = 100, image_size: int = 64, filters: int = 64, *, seed: int = 0, name: str = "generator"
) -> Any:
    """The DCGAN generator: (N, latent_dim) noise -> (N, image_size, image_size, 3) in [-1, 1]."""
    keras = _keras()
    layers = keras.layers
    init = _Init(seed, 2)
    ups = _halvings(image_size)
    channels = 8 * filters
    noise = keras.Input((latent_dim,), name="noise")
    x = layers.Dense(4 * 4 * channels, use_bias=False, kernel_initializer=init())(noise)
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
    x = layers.Reshape((4, 4, channels))(x)  # (N, 4, 4, 8f)
    for _ in range(ups - 1):
        channels = max(1, channels // 2)
        x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False, kernel_initializer=init())(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
    out = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", kernel_initializer=init())(x)
    return keras.Model(noise, out, name=name)


def dcgan_discriminator(image_size: int = 64, filters: int = 64, *, seed: int = 0, name: str = "discriminator") -> Any:
    """The DCGAN discriminator: (N, image_size, image_size, 3) -> (N, 1) logits."""
    keras = _keras()
    layers = keras.layers
    init = _Init(seed, 3)
    image = keras.Input((image_size, image_size, 3), name="image")
    channels = filters
    x = layers.Conv2D(channels, 4, strides=2, padding="same", kernel_initializer=init())(image)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    for _ in range(_halvings(image_size) - 1):  # down to (N, 4, 4, c)
        channels *= 2
        x = layers.Conv2D(channels, 4, strides=2, padding="same", use_bias=False, kernel_initializer=init())(x)
        x = layers.LeakyReLU(negative_slope=0.2)(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
    out = layers.Dense(1, kernel_initializer=init())(layers.Flatten()(x))
    return keras.Model(image, out, name=name)


def _halvings(image_size: int) -> int:
    """Stride-2 steps between 4 px and image_size: 2 for 16, 3 for 32, 4 for 64."""
    return int(round(math.log2(image_size / 4)))


# --- data ------------------------------------------------------------------------------------------


def _checked_images(images: object, what: str, minimum: int) -> list[np.ndarray]:
    if not isinstance(images, Sequence) or isinstance(images, str | bytes):
        raise ValueError(f"{what}: expected a list of (H, W, 3) uint8 images")
    if len(images) < minimum:
        raise ValueError(f"{what}: at least {minimum} image(s) needed, got {len(images)}")
    for i, rgb in enumerate(images):
        if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
            raise ValueError(f"{what}[{i}]: expected an (H, W, 3) uint8 RGB image")
        if min(rgb.shape[:2]) < 1:
            raise ValueError(f"{what}[{i}]: the image is empty ({rgb.shape[0]}×{rgb.shape[1]})")
    return list(images)


def _fingerprint(*sets: Sequence[np.ndarray]) -> str:
    """sha256 of the training images, in order: a resume must see the same data to continue the run."""
    digest = hashlib.sha256()
    for images in sets:
        digest.update(f"[{len(images)}]".encode())
        for rgb in images:
            digest.update(repr(rgb.shape).encode())
            digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


def _shorter_side_to(rgb: np.ndarray, side: int) -> np.ndarray:
    """The image scaled (Lanczos) so that its shorter side is `side` px, keeping its aspect ratio."""
    height, width = rgb.shape[:2]
    scale = side / min(height, width)
    return imaging.resize(rgb, max(side, round(height * scale)), max(side, round(width * scale)))


def _centre_square(rgb: np.ndarray, side: int) -> np.ndarray:
    """The image's centre square, resized to side × side."""
    height, width = rgb.shape[:2]
    short = min(height, width)
    top, left = (height - short) // 2, (width - short) // 2
    return imaging.resize(np.ascontiguousarray(rgb[top : top + short, left : left + short]), side, side)


def _to_unit(rgb: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [-1, 1]."""
    return rgb.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((values + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _order(n: int, seed: int, stream: int, start: int, count: int) -> np.ndarray:
    """Items start .. start+count-1 of an endless run of epochs, each a permutation of range(n) drawn
    from (seed, stream, epoch): every image is seen once per epoch, and any step's batch is known
    from its index alone."""
    positions = np.arange(start, start + count)
    epochs = positions // n
    out = np.empty(count, dtype=np.int64)
    for epoch in np.unique(epochs):
        where = epochs == epoch
        out[where] = np.random.default_rng([seed, stream, int(epoch)]).permutation(n)[positions[where] % n]
    return out


class _ImagePool:
    """The CycleGAN paper's history of generated images (Shrivastava et al.): once full, each new image
    is shown as is or, with probability 1/2, swapped for a stored one, which is shown instead."""

    def __init__(self, capacity: int, image_shape: tuple[int, ...]) -> None:
        self.images = np.zeros((capacity, *image_shape), dtype=np.float32)
        self.count = 0

    def query(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = batch.copy()
        capacity = len(self.images)
        for i, image in enumerate(batch):
            if self.count < capacity:
                self.images[self.count] = image
                self.count += 1
            elif rng.random() < 0.5:
                j = int(rng.integers(capacity))
                out[i] = self.images[j]
                self.images[j] = image
        return out

    def stored(self) -> np.ndarray:
        return self.images[: self.count]

    def restore(self, images: np.ndarray) -> None:
        if images.shape[1:] != self.images.shape[1:] or len(images) > len(self.images):
            raise ValueError(f"the checkpoint's image pool {images.shape} does not fit this run")
        self.images[: len(images)] = images
        self.count = len(images)


# --- files -----------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows): nothing to flush
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    with open(path, "xb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())


def _write_atomically(final: Path, write: Callable[[IO[bytes]], object]) -> None:
    """A file that appears whole or not at all: a hidden temp file in the same folder, then os.replace."""
    temp = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write_file(temp, write)
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoints in `folder`, oldest first (a temp folder is never one of them)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


# --- the trainer -----------------------------------------------------------------------------------


class Trainer:
    """A training run driven one step at a time; see the module's doc. Make one with `create` or `resume`."""

    kind: Kind

    def __init__(self, params: TrainingParams, checkpoint_dir: Path, fingerprint: str) -> None:
        self.params = params
        self.checkpoint_dir = checkpoint_dir
        self._fingerprint = fingerprint
        self._step = 0

    # -- making one

    @staticmethod
    def create(
        kind: str,
        params: Mapping[str, Any] | None,
        photos: Sequence[np.ndarray],
        paintings: Sequence[np.ndarray] | None,
        checkpoint_dir: str | os.PathLike[str],
    ) -> Trainer:
        """A new run, at step 0. `photos`, `paintings`: (H, W, 3) uint8 RGB images; a CycleGAN needs
        two photos at least (one is held out for `sample`) and one painting, a DCGAN trains on
        `photos` alone (`paintings` None). Raises ValueError for bad params or images, and
        FileExistsError when `checkpoint_dir` already holds a checkpoint (resume it instead)."""
        folder = Path(checkpoint_dir)
        found = _checkpoints(folder)
        if found:
            raise FileExistsError(
                f"{folder} already holds a checkpoint ({found[-1].name}): resume it or use a new folder"
            )
        return _build(kind, TrainingParams.read(kind, params), photos, paintings, folder)

    @staticmethod
    def resume(
        checkpoint_dir: str | os.PathLike[str], photos: Sequence[np.ndarray], paintings: Sequence[np.ndarray] | None
    ) -> Trainer | None:
        """The run saved in `checkpoint_dir`, at its latest checkpoint's step; None when there is none.
        The images must be those the run was created with, in the same order (ValueError if not)."""
        folder = Path(checkpoint_dir)
        found = _checkpoints(folder)
        if not found:
            return None
        latest = found[-1]
        state = json.loads((latest / "state.json").read_text())
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{latest}: checkpoint format {state.get('format')!r}, this version reads {CHECKPOINT_FORMAT}"
            )
        kind = state["kind"]
        trainer = _build(kind, TrainingParams.read(kind, state["params"]), photos, paintings, folder)
        if trainer._fingerprint != state["data"]["fingerprint"]:
            raise ValueError(
                f"{latest} was trained on other images ({state['data']['counts']}): resume it with the same "
                "photos and paintings, in the same order"
            )
        with np.load(latest / "arrays.npz") as arrays:
            trainer._restore(state, {key: arrays[key] for key in arrays.files})
        trainer._step = int(state["step"])
        return trainer

    # -- running

    @property
    def step_index(self) -> int:
        """Steps done so far (the next `step()` is this one, 0-based)."""
        return self._step

    @property
    def done(self) -> bool:
        return self._step >= self.params.steps

    def step(self) -> dict[str, float]:
        """One optimisation step of every network; the losses by name (`LOSSES[kind]`)."""
        if self.done:
            raise RuntimeError(f"the run is over: {self.params.steps} steps done")
        losses = self._train_step(self._step)
        self._step += 1
        return losses

    def sample(self) -> np.ndarray:
        """A preview, (H, W, 3) uint8 RGB, of the same input at every step (the networks in inference mode)."""
        raise NotImplementedError

    @property
    def generator(self) -> Any:
        """The network `export` writes: the Keras model (CycleGAN: G_AB, photo -> painting)."""
        return self._generator()

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and fixed weights of each network, by name."""
        return {name: int(net.count_params()) for name, net in self._networks().items()}

    # -- saving

    def checkpoint(self) -> Path:
        """Save everything a resume needs, atomically; the older checkpoints are then removed.
        Returns the checkpoint's folder (`checkpoint_dir/step-<step>`)."""
        folder = self.checkpoint_dir
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"step-{self._step:09d}"
        if final.is_dir():  # saved at this step already: the state cannot have changed since
            return final
        for stale in folder.glob(_TEMP_PREFIX + "*"):  # left by a writer that was killed
            shutil.rmtree(stale, ignore_errors=True)
        temp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=folder))
        try:
            arrays = self._state_arrays()
            _write_file(temp / "arrays.npz", lambda file: np.savez(file, **cast(dict[str, Any], arrays)))
            state = {
                "format": CHECKPOINT_FORMAT,
                "kind": self.kind,
                "step": self._step,
                "params": self.params.to_json(),
                "rng": {"seed": self.params.seed, "scheme": "numpy default_rng([seed, stream, step])"},
                "data": {"fingerprint": self._fingerprint, "counts": self._counts()},
                **self._state_json(),
            }
            _write_file(temp / "state.json", lambda file: file.write(json.dumps(state, indent=1).encode()))
            _fsync_dir(temp)
            os.replace(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync_dir(folder)
        for old in _checkpoints(folder):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def export(self, models_dir: str | os.PathLike[str], name: str) -> Path:
        """Write the generator as `<name>.keras` with its sidecar `<name>.json` into `models_dir`, each
        atomically (a hidden temp file, then os.replace), the sidecar first. Returns the model's path."""
        if not (NAME_PATTERN.fullmatch(name) and len(name) <= MAX_NAME):
            raise ValueError(
                f"model name {name!r}: letters, digits, '.', '_', '-', starting with a letter or digit, "
                f"at most {MAX_NAME}"
            )
        folder = Path(models_dir)
        folder.mkdir(parents=True, exist_ok=True)
        sidecar = {"name": name, "range": [-1, 1], "description": self._description(), **self._sidecar()}
        _write_atomically(folder / f"{name}.json", lambda file: file.write(json.dumps(sidecar, indent=1).encode()))
        final = folder / f"{name}.keras"
        temp = folder / f".{name}.{secrets.token_hex(4)}.keras"  # hidden: pycasso.models skips it
        try:
            self._generator().save(str(temp))
            with open(temp, "rb") as file:
                os.fsync(file.fileno())
            os.replace(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
        return final

    # -- what each recipe provides

    def _train_step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def _networks(self) -> dict[str, Any]:
        raise NotImplementedError

    def _optimizers(self) -> dict[str, Any]:
        raise NotImplementedError

    def _generator(self) -> Any:
        raise NotImplementedError

    def _description(self) -> str:
        raise NotImplementedError

    def _sidecar(self) -> dict[str, Any]:
        raise NotImplementedError

    def _counts(self) -> dict[str, int]:
        raise NotImplementedError

    def _state_json(self) -> dict[str, Any]:
        return {}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _restore_extra(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        pass

    # -- shared machinery

    def _rng(self, stream: int, *more: int) -> np.random.Generator:
        return np.random.default_rng([self.params.seed, stream, *more])

    def _state_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for name, net in self._networks().items():
            for i, weight in enumerate(net.get_weights()):
                arrays[f"net.{name}.{i:04d}"] = np.asarray(weight)
        for name, optimizer in self._optimizers().items():
            for i, variable in enumerate(optimizer.variables):
                arrays[f"opt.{name}.{i:04d}"] = np.asarray(variable.numpy())
        return arrays | self._extra_arrays()

    def _restore(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        def saved(prefix: str) -> list[np.ndarray]:
            return [arrays[key] for key in sorted(k for k in arrays if k.startswith(prefix))]

        for name, net in self._networks().items():
            weights = saved(f"net.{name}.")
            expected = [w.shape for w in net.get_weights()]
            if [w.shape for w in weights] != expected:
                raise ValueError(f"the checkpoint's {name} does not fit this run's network")
            net.set_weights(weights)
        for name, optimizer in self._optimizers().items():
            values = saved(f"opt.{name}.")
            variables = list(optimizer.variables)
            if [tuple(v.shape) for v in values] != [tuple(v.shape) for v in variables]:
                raise ValueError(f"the checkpoint's {name} optimiser state does not fit this run")
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        self._restore_extra(state, arrays)


def _build(
    kind: str,
    params: TrainingParams,
    photos: Sequence[np.ndarray],
    paintings: Sequence[np.ndarray] | None,
    folder: Path,
) -> Trainer:
    if kind == "cyclegan":
        photos = _checked_images(photos, "photos", 2)  # one is held out for the previews
        if paintings is None:
            raise ValueError("paintings: a CycleGAN learns from photos and paintings: give at least one painting")
        paintings = _checked_images(paintings, "paintings", 1)
        return _CycleGAN(params, folder, photos, paintings)
    if kind == "dcgan":
        if paintings is not None:
            raise ValueError("paintings: a DCGAN learns from one set of images: give them as photos, paintings None")
        return _DCGAN(params, folder, _checked_images(photos, "photos", 1))
    raise ValueError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")


def _adam(params: TrainingParams, variables: list[Any]) -> Any:
    optimizer = _keras().optimizers.Adam(learning_rate=params.learning_rate, beta_1=params.beta1)
    optimizer.build(variables)  # its slots exist before the compiled step runs (and before a restore)
    return optimizer


def _mse(values: tf.Tensor, target: float) -> tf.Tensor:
    return tf.reduce_mean(tf.square(values - target))


def _l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.abs(a - b))


def _bce_logits(logits: tf.Tensor, target: float) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))


class _CycleGAN(Trainer):
    kind: Kind = "cyclegan"

    def __init__(
        self, params: TrainingParams, folder: Path, photos: Sequence[np.ndarray], paintings: Sequence[np.ndarray]
    ) -> None:
        super().__init__(params, folder, _fingerprint(photos, paintings))
        size, seed, f = params.image_size, params.seed, params.filters
        held_out = int(self._rng(_HELD_OUT).integers(len(photos)))
        self._held_out = held_out
        self._preview = _to_unit(_centre_square(photos[held_out], size))[None]  # (1, size, size, 3)
        load = max(size, round(size * LOAD_SCALE))
        self._photos = [_shorter_side_to(p, load) for i, p in enumerate(photos) if i != held_out]
        self._paintings = [_shorter_side_to(p, load) for p in paintings]
        self.n_res = resnet_blocks(size)
        # Distinct seeds per network: the two generators (and discriminators) start different.
        self.g_ab = cyclegan_generator(f, self.n_res, seed=seed * 4 + 0, name="G_AB")
        self.g_ba = cyclegan_generator(f, self.n_res, seed=seed * 4 + 1, name="G_BA")
        self.d_a = patchgan_discriminator(f, seed=seed * 4 + 2, name="D_A")
        self.d_b = patchgan_discriminator(f, seed=seed * 4 + 3, name="D_B")
        self._g_vars = [*self.g_ab.trainable_variables, *self.g_ba.trainable_variables]
        self._d_vars = [*self.d_a.trainable_variables, *self.d_b.trainable_variables]
        self.opt_g = _adam(params, self._g_vars)
        self.opt_d = _adam(params, self._d_vars)
        self._pool_a = _ImagePool(POOL_SIZE, (size, size, 3))  # generated paintings -> photos, for D_A
        self._pool_b = _ImagePool(POOL_SIZE, (size, size, 3))
        self._g_step = tf.function(self._generators_step)
        self._d_step = tf.function(self._discriminators_step)

    def _networks(self) -> dict[str, Any]:
        return {"G_AB": self.g_ab, "G_BA": self.g_ba, "D_A": self.d_a, "D_B": self.d_b}

    def _optimizers(self) -> dict[str, Any]:
        return {"generators": self.opt_g, "discriminators": self.opt_d}

    def _generator(self) -> Any:
        return self.g_ab

    def _counts(self) -> dict[str, int]:
        return {"photos": len(self._photos) + 1, "paintings": len(self._paintings)}

    def learning_rate(self, step: int) -> float:
        """The paper's schedule: constant for the first half of the steps, then linearly to zero."""
        steps = self.params.steps
        return self.params.learning_rate * min(1.0, 2.0 * (steps - step) / steps)

    def _batch(self, images: list[np.ndarray], stream: int, domain: int, step: int) -> np.ndarray:
        """(B, size, size, 3) in [-1, 1]: step `step`'s images of one domain, cropped and flipped."""
        size, batch = self.params.image_size, self.params.batch_size
        indices = _order(len(images), self.params.seed, stream, step * batch, batch)
        rng = self._rng(_AUGMENT, domain, step)
        out = np.empty((batch, size, size, 3), dtype=np.float32)
        for i, index in enumerate(indices):
            rgb = images[index]
            top = int(rng.integers(rgb.shape[0] - size + 1))
            left = int(rng.integers(rgb.shape[1] - size + 1))
            crop = rgb[top : top + size, left : left + size]
            out[i] = _to_unit(crop[:, ::-1] if rng.random() < 0.5 else crop)
        return out

    def _generators_step(self, real_a: tf.Tensor, real_b: tf.Tensor) -> tuple[tf.Tensor, ...]:
        p = self.params
        batch = tf.shape(real_a)[0]
        with tf.GradientTape() as tape:
            # Each generator sees the other domain (to translate) and its own (the identity term) as one
            # batch: instance norm keeps the images apart, and it is 4 network calls instead of 6.
            if p.identity_weight > 0:
                both_b = self.g_ab(tf.concat([real_a, real_b], 0), training=True)  # (2B, H, W, 3)
                both_a = self.g_ba(tf.concat([real_b, real_a], 0), training=True)
                fake_b, same_b = both_b[:batch], both_b[batch:]
                fake_a, same_a = both_a[:batch], both_a[batch:]
                identity = p.identity_weight * (_l1(same_b, real_b) + _l1(same_a, real_a))
            else:
                fake_b, fake_a = self.g_ab(real_a, training=True), self.g_ba(real_b, training=True)
                identity = tf.constant(0.0)
            adversarial = _mse(self.d_b(fake_b, training=True), 1.0) + _mse(self.d_a(fake_a, training=True), 1.0)
            cycle = p.cycle_weight * (
                _l1(self.g_ba(fake_b, training=True), real_a) + _l1(self.g_ab(fake_a, training=True), real_b)
            )
            total = adversarial + cycle + identity
        gradients = tape.gradient(total, self._g_vars)
        self.opt_g.apply(gradients, self._g_vars)
        return fake_a, fake_b, adversarial, cycle, identity

    def _discriminators_step(
        self, real_a: tf.Tensor, real_b: tf.Tensor, fake_a: tf.Tensor, fake_b: tf.Tensor
    ) -> tf.Tensor:
        batch = tf.shape(real_a)[0]
        with tf.GradientTape() as tape:
            scores_a = self.d_a(tf.concat([real_a, fake_a], 0), training=True)  # (2B, h, w, 1): real, then fake
            scores_b = self.d_b(tf.concat([real_b, fake_b], 0), training=True)
            loss_a = 0.5 * (_mse(scores_a[:batch], 1.0) + _mse(scores_a[batch:], 0.0))
            loss_b = 0.5 * (_mse(scores_b[:batch], 1.0) + _mse(scores_b[batch:], 0.0))
            total = loss_a + loss_b
        gradients = tape.gradient(total, self._d_vars)
        self.opt_d.apply(gradients, self._d_vars)
        return total

    def _train_step(self, step: int) -> dict[str, float]:
        real_a = self._batch(self._photos, _ORDER_A, 0, step)
        real_b = self._batch(self._paintings, _ORDER_B, 1, step)
        rate = self.learning_rate(step)
        self.opt_g.learning_rate = rate
        self.opt_d.learning_rate = rate
        fake_a, fake_b, adversarial, cycle, identity = self._g_step(real_a, real_b)
        rng = self._rng(_POOL, step)
        shown_a = self._pool_a.query(np.asarray(fake_a), rng)
        shown_b = self._pool_b.query(np.asarray(fake_b), rng)
        discriminator = self._d_step(real_a, real_b, shown_a, shown_b)
        return {
            "generator": float(adversarial),
            "discriminator": float(discriminator),
            "cycle": float(cycle),
            "identity": float(identity),
        }

    def sample(self) -> np.ndarray:
        """The held-out photo (its centre square at image_size) as G_AB paints it."""
        return _to_uint8(np.asarray(self.g_ab(self._preview, training=False))[0])

    def _state_json(self) -> dict[str, Any]:
        return {"held_out": self._held_out, "pool": {"a": self._pool_a.count, "b": self._pool_b.count}}

    def _extra_arrays(self) -> dict[str, np.ndarray]:
        return {"pool_a": self._pool_a.stored(), "pool_b": self._pool_b.stored()}

    def _restore_extra(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        if state["held_out"] != self._held_out:
            raise ValueError("the checkpoint held out another photo: it was made with other data or seed")
        self._pool_a.restore(arrays["pool_a"])
        self._pool_b.restore(arrays["pool_b"])

    def _description(self) -> str:
        p = self.params
        return (
            f"CycleGAN photo → painting, trained on {len(self._photos)} photos and {len(self._paintings)} "
            f"paintings for {self._step} steps at {p.image_size} px (filters {p.filters}, {self.n_res} residual "
            f"blocks, seed {p.seed})"
        )

    def _sidecar(self) -> dict[str, Any]:
        return {"kind": "image", "multiple": 4}  # two stride-2 halvings: any size that is a multiple of 4


class _DCGAN(Trainer):
    kind: Kind = "dcgan"

    def __init__(self, params: TrainingParams, folder: Path, images: Sequence[np.ndarray]) -> None:
        super().__init__(params, folder, _fingerprint(images))
        size, seed, f = params.image_size, params.seed, params.filters
        self._images = np.stack([_centre_square(rgb, size) for rgb in images])  # (N, size, size, 3) uint8
        self.g = dcgan_generator(params.latent_dim, size, f, seed=seed * 2, name="G")
        self.d = dcgan_discriminator(size, f, seed=seed * 2 + 1, name="D")
        self.opt_g = _adam(params, self.g.trainable_variables)
        self.opt_d = _adam(params, self.d.trainable_variables)
        self._noise = self._rng(_SAMPLE).standard_normal((GRID * GRID, params.latent_dim)).astype(np.float32)
        self._compiled_step = tf.function(self._both_step)

    def _networks(self) -> dict[str, Any]:
        return {"G": self.g, "D": self.d}

    def _optimizers(self) -> dict[str, Any]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def _generator(self) -> Any:
        return self.g

    def _counts(self) -> dict[str, int]:
        return {"photos": len(self._images)}

    def _both_step(self, real: tf.Tensor, noise: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        g_vars, d_vars = self.g.trainable_variables, self.d.trainable_variables
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.g(noise, training=True)
            real_logits = self.d(real, training=True)
            fake_logits = self.d(fake, training=True)
            g_loss = _bce_logits(fake_logits, 1.0)
            d_loss = _bce_logits(real_logits, 1.0) + _bce_logits(fake_logits, 0.0)
        self.opt_g.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        self.opt_d.apply(d_tape.gradient(d_loss, d_vars), d_vars)
        return g_loss, d_loss

    def _train_step(self, step: int) -> dict[str, float]:
        p = self.params
        indices = _order(len(self._images), p.seed, _ORDER_A, step * p.batch_size, p.batch_size)
        rng = self._rng(_AUGMENT, 0, step)
        flips = rng.random(p.batch_size) < 0.5
        batch = self._images[indices]  # (B, size, size, 3) uint8
        batch[flips] = batch[flips, :, ::-1]
        noise = self._rng(_NOISE, step).standard_normal((p.batch_size, p.latent_dim)).astype(np.float32)
        g_loss, d_loss = self._compiled_step(_to_unit(batch), noise)
        return {"generator": float(g_loss), "discriminator": float(d_loss)}

    def sample(self) -> np.ndarray:
        """A 4×4 grid of images from the same noise every time: (4·size, 4·size, 3)."""
        images = _to_uint8(np.asarray(self.g(self._noise, training=False)))  # (16, size, size, 3)
        size = self.params.image_size
        return images.reshape(GRID, GRID, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(GRID * size, GRID * size, 3)

    def _description(self) -> str:
        p = self.params
        return (
            f"DCGAN noise → {p.image_size}×{p.image_size} image, trained on {len(self._images)} images for "
            f"{self._step} steps (latent {p.latent_dim}, filters {p.filters}, seed {p.seed})"
        )

    def _sidecar(self) -> dict[str, Any]:
        return {"kind": "latent"}


__all__ = [
    "CHECKPOINT_FORMAT",
    "DCGAN_SIZES",
    "KINDS",
    "LOSSES",
    "POOL_SIZE",
    "Trainer",
    "TrainingParams",
    "cyclegan_generator",
    "dcgan_discriminator",
    "dcgan_generator",
    "patchgan_discriminator",
    "resnet_blocks",
]
