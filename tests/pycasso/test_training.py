"""Training CycleGAN and DCGAN generators on tiny networks and made-up images: losses, checkpoints,
resume, export to the `model` engine, parameters.

One run per kind (module fixture `run`) takes 20 steps, checkpoints at step 10 and has its checkpoint
at step 15 interrupted; the tests read what it left. Everything is seeded: the numbers are the same
on every run on a given machine.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pycasso.models import Models
from pycasso.training import KINDS, LOSSES, Trainer, TrainingParams

pytestmark = pytest.mark.slow  # TensorFlow: one compiled step per kind, a few seconds

STEPS = 20
FIRST_CHECKPOINT = 10
INTERRUPTED_AT = 15
LATENT_DIM = 8
TINY: dict[str, dict[str, object]] = {
    # A learning rate 10× the paper's: tiny networks, 20 steps, and the cycle loss must visibly fall.
    "cyclegan": {"filters": 4, "image_size": 16, "batch_size": 4, "learning_rate": 2e-3, "steps": 40, "seed": 3},
    "dcgan": {"filters": 4, "image_size": 16, "batch_size": 8, "latent_dim": LATENT_DIM, "steps": 40, "seed": 3},
}


# --- made-up images ------------------------------------------------------------------------------


def gradient(height: int, width: int, angle: float) -> np.ndarray:
    """A smooth two-colour gradient along `angle`: a 'photo'."""
    y, x = np.mgrid[0:height, 0:width]
    t = np.cos(angle) * x / width + np.sin(angle) * y / height
    return np.stack([t * 200 + 30, (1 - t) * 180 + 40, np.full_like(t, 90.0)], -1).clip(0, 255).astype(np.uint8)


def stripes(height: int, width: int, slant: int) -> np.ndarray:
    """Hard red/blue stripes, 3 px wide: a 'painting'."""
    y, x = np.mgrid[0:height, 0:width]
    v = ((x + y * slant) // 3 % 2) * 180 + 40
    return np.stack([v, np.full_like(v, 120), 255 - v], -1).astype(np.uint8)


def square(colour: tuple[int, int, int], side: int = 20, at: int = 4) -> np.ndarray:
    """A coloured square on grey, (24, 28, 3): what a DCGAN learns to make."""
    image = np.full((24, 28, 3), 128, dtype=np.uint8)
    image[at : at + side // 2, at + 4 : at + 4 + side // 2] = colour
    return image


def photos() -> list[np.ndarray]:
    return [gradient(20 + 3 * k, 24, 0.7 * k) for k in range(5)]


def paintings() -> list[np.ndarray]:
    return [stripes(24, 20 + 2 * k, k % 3) for k in range(4)]


def squares() -> list[np.ndarray]:
    colours = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 30), (200, 40, 200), (30, 200, 200)]
    return [square(c, side=16 + 2 * (i % 3), at=2 + i % 4) for i, c in enumerate(colours)]


def images_for(kind: str) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    return (photos(), paintings()) if kind == "cyclegan" else (squares(), None)


# --- the shared runs -----------------------------------------------------------------------------


@dataclass
class Run:
    kind: str
    trainer: Trainer
    losses: list[dict[str, float]]  # losses[k]: step k's
    folder: Path  # the checkpoints
    interrupted: BaseException | None  # what the checkpoint at step INTERRUPTED_AT raised
    left_after_interruption: list[str]  # the folder's entries after it


class Interrupted(OSError):
    pass


@pytest.fixture(scope="module", params=KINDS)
def run(request, tmp_path_factory) -> Run:
    kind = request.param
    folder = tmp_path_factory.mktemp(f"{kind}-checkpoints")
    trainer = Trainer.create(kind, TINY[kind], *images_for(kind), folder)
    losses, interrupted, left = [], None, []
    for _ in range(STEPS):
        if trainer.step_index == FIRST_CHECKPOINT:
            trainer.checkpoint()
        if trainer.step_index == INTERRUPTED_AT:

            def fail(*args: object, **kwargs: object) -> None:
                raise Interrupted("the disk went away mid-write")

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(os, "replace", fail)
                try:
                    trainer.checkpoint()
                except Interrupted as exc:
                    interrupted = exc
            left = sorted(p.name for p in folder.iterdir())
        losses.append(trainer.step())
    return Run(kind, trainer, losses, folder, interrupted, left)


# --- (a) it learns -------------------------------------------------------------------------------


def test_the_losses_are_finite_and_move(run):
    assert all(set(step) == set(LOSSES[run.kind]) for step in run.losses)
    assert all(math.isfinite(v) for step in run.losses for v in step.values())
    for name in ("generator", "discriminator"):
        values = [step[name] for step in run.losses]
        assert max(values) - min(values) > 0.01 * abs(values[0]), f"{name} stayed at {values[0]}"
    if run.kind == "cyclegan":
        cycle = [step["cycle"] for step in run.losses]
        assert np.mean(cycle[-5:]) < 0.95 * np.mean(cycle[:5]), cycle


@pytest.mark.parametrize("run", ["dcgan"], indirect=True)  # the seed handling is shared: the cheap kind shows it
def test_a_run_is_reproducible_from_its_seed(run, tmp_path):
    again = Trainer.create(run.kind, TINY[run.kind], *images_for(run.kind), tmp_path)
    assert [again.step() for _ in range(3)] == run.losses[:3]


def test_the_sample_is_the_same_preview_every_time(run):
    first = run.trainer.sample()
    size = TINY[run.kind]["image_size"]
    assert isinstance(size, int)
    side = size if run.kind == "cyclegan" else 4 * size  # DCGAN: a 4×4 grid
    assert first.shape == (side, side, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(run.trainer.sample(), first)


# --- (b) resume, (c) an interrupted checkpoint -----------------------------------------------------


def test_an_interrupted_checkpoint_leaves_the_previous_one_whole(run):
    assert isinstance(run.interrupted, Interrupted)
    assert run.left_after_interruption == [f"step-{FIRST_CHECKPOINT:09d}"]  # no half-written folder either
    state = json.loads((run.folder / run.left_after_interruption[0] / "state.json").read_text())
    assert state["step"] == FIRST_CHECKPOINT and state["kind"] == run.kind


def test_a_resumed_run_continues_exactly_where_the_checkpoint_was(run):
    resumed = Trainer.resume(run.folder, *images_for(run.kind))
    assert resumed is not None and resumed.step_index == FIRST_CHECKPOINT
    # Bit for bit: the same weights, optimiser moments, image pools and per-step random draws.
    assert [resumed.step() for _ in range(3)] == run.losses[FIRST_CHECKPOINT : FIRST_CHECKPOINT + 3]


def test_only_the_latest_checkpoint_is_kept_and_a_dead_writers_folder_is_cleared(tmp_path):
    trainer = Trainer.create("dcgan", TINY["dcgan"], squares(), None, tmp_path)
    first = trainer.checkpoint()
    assert trainer.checkpoint() == first  # nothing changed: nothing written
    stale = tmp_path / ".writing-killed"  # what a writer killed mid-write leaves
    stale.mkdir()
    (stale / "arrays.npz").write_bytes(b"half")
    assert Trainer.resume(tmp_path, squares(), None) is not None  # ignored
    trainer.step()
    second = trainer.checkpoint()
    assert sorted(p.name for p in tmp_path.iterdir()) == [second.name] == ["step-000000001"]


def test_resume_finds_nothing_in_an_empty_folder_and_create_refuses_a_used_one(run, tmp_path):
    assert Trainer.resume(tmp_path / "absent", *images_for(run.kind)) is None
    assert Trainer.resume(tmp_path, *images_for(run.kind)) is None
    with pytest.raises(FileExistsError, match="resume it"):
        Trainer.create(run.kind, TINY[run.kind], *images_for(run.kind), run.folder)


def test_resume_refuses_other_images(run):
    photos_, paintings_ = images_for(run.kind)
    with pytest.raises(ValueError, match="other images"):
        Trainer.resume(run.folder, photos_[::-1], paintings_)


# --- (d) export to the model engine ---------------------------------------------------------------


def test_the_exported_generator_is_served_by_the_model_engine(run, tmp_path):
    path = run.trainer.export(tmp_path, f"tiny-{run.kind}")
    assert path == tmp_path / f"tiny-{run.kind}.keras"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"tiny-{run.kind}.json", f"tiny-{run.kind}.keras"]

    models = Models(tmp_path)
    (info,) = models.list()
    assert info.problem is None, info.problem
    assert info.name == f"tiny-{run.kind}" and info.value_range == (-1.0, 1.0)
    assert f"for {STEPS} steps" in info.description
    if run.kind == "cyclegan":
        assert info.kind == "image" and info.input_size is None  # fully convolutional
        assert "trained on 4 photos" in info.description  # the fifth is held out for the previews
        photo = gradient(45, 60, 0.3)
        painted = models.paint(info.name, photo, 40, seed=0)
        assert painted.shape == (40, 53, 3) and painted.dtype == np.uint8
    else:
        assert info.kind == "latent" and info.latent_dim == LATENT_DIM
        painted = models.paint(info.name, None, 48, seed=5)
        assert painted.shape == (48, 48, 3) and painted.dtype == np.uint8


def test_the_exported_file_is_the_trained_generator(run, tmp_path):
    keras = importlib.import_module("keras")  # after pycasso.training, which set up TensorFlow
    exported = keras.saving.load_model(str(run.trainer.export(tmp_path, "copy")), compile=False, safe_mode=True)
    trained = run.trainer.generator
    if run.kind == "cyclegan":
        x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 20, 3))
    else:
        x = np.random.default_rng(0).standard_normal((1, LATENT_DIM))
    np.testing.assert_array_equal(np.asarray(exported(x)), np.asarray(trained(x, training=False)))


def test_export_refuses_a_name_that_is_not_a_model_name(run, tmp_path):
    with pytest.raises(ValueError, match="model name"):
        run.trainer.export(tmp_path, "../escape")
    assert list(tmp_path.iterdir()) == []


# --- (e) parameters and images ----------------------------------------------------------------------


def test_missing_parameters_take_the_defaults():
    cyclegan = TrainingParams.read("cyclegan", {})
    assert (cyclegan.batch_size, cyclegan.image_size, cyclegan.filters) == (1, 256, 64)
    assert (cyclegan.learning_rate, cyclegan.beta1, cyclegan.cycle_weight, cyclegan.identity_weight) == (
        2e-4,
        0.5,
        10.0,
        5.0,
    )
    assert TrainingParams.read("cyclegan", {"cycle_weight": 4}).identity_weight == 2.0  # half, unless given
    assert TrainingParams.read("cyclegan", {"identity_weight": 0}).identity_weight == 0.0
    dcgan = TrainingParams.read("dcgan", None)
    assert (dcgan.batch_size, dcgan.image_size, dcgan.latent_dim) == (64, 32, 100)
    # painting.training's to_engine() sends None for what a kind does not read: the default, then.
    assert TrainingParams.read("dcgan", {"cycle_weight": None, "identity_weight": None, "latent_dim": 16}) == (
        TrainingParams.read("dcgan", {"latent_dim": 16})
    )


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("gan", {}, "kind 'gan': must be one of cyclegan, dcgan"),
        ("cyclegan", {"step": 10}, r"unknown training parameter\(s\) step"),
        ("cyclegan", {"steps": 0}, "steps 0: must be a whole number from 1"),
        ("cyclegan", {"steps": 2.5}, "steps 2.5: must be a whole number"),
        ("cyclegan", {"batch_size": True}, "batch_size True: must be a whole number"),
        ("cyclegan", {"image_size": 30}, "image_size 30: a CycleGAN's crops must be a multiple of 4"),
        ("cyclegan", {"image_size": 8}, "image_size 8: must be a whole number from 16 to 512"),
        ("dcgan", {"image_size": 48}, "image_size 48: a DCGAN makes 16, 32, 64 px images"),
        ("dcgan", {"learning_rate": 0}, r"learning_rate 0: must be a number in \(0, 0.1\]"),
        ("dcgan", {"learning_rate": "fast"}, "learning_rate 'fast': must be a number"),
        ("dcgan", {"beta1": 1.0}, r"beta1 1.0: must be a number in \[0, 1\)"),
        ("cyclegan", {"cycle_weight": float("nan")}, "cycle_weight nan: must be a number"),
        ("cyclegan", {"identity_weight": -1}, "identity_weight -1: must be a number"),
        ("dcgan", {"latent_dim": 0}, "latent_dim 0: must be a whole number from 1 to 1024"),
        ("dcgan", {"filters": "64"}, "filters '64': must be a whole number"),
        ("dcgan", {"seed": -1}, "seed -1: must be a whole number from 0"),
    ],
)
def test_nonsense_parameters_are_refused_by_name(kind, params, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        TrainingParams.read(kind, params)
    with pytest.raises(ValueError, match=message):
        Trainer.create(kind, params, photos(), paintings() if kind == "cyclegan" else None, tmp_path)


@pytest.mark.parametrize(
    ("kind", "photos_", "paintings_", "message"),
    [
        ("cyclegan", [gradient(20, 20, 0)], [stripes(20, 20, 0)], "photos: at least 2 image"),
        ("cyclegan", [gradient(20, 20, 0)] * 2, None, "paintings: a CycleGAN learns from photos and paintings"),
        ("cyclegan", [gradient(20, 20, 0)] * 2, [], "paintings: at least 1 image"),
        ("cyclegan", [gradient(20, 20, 0), np.zeros((20, 20), np.uint8)], [stripes(20, 20, 0)], r"photos\[1\]"),
        ("dcgan", [np.zeros((20, 20, 3), np.float32)], None, r"photos\[0\]: expected an \(H, W, 3\) uint8"),
        ("dcgan", [np.zeros((0, 20, 3), np.uint8)], None, r"photos\[0\]: the image is empty"),
        ("dcgan", [square((1, 2, 3))], [square((1, 2, 3))], "paintings: a DCGAN learns from one set"),
    ],
)
def test_images_that_cannot_train_are_refused(kind, photos_, paintings_, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        Trainer.create(kind, TINY[kind], photos_, paintings_, tmp_path)


def test_a_finished_run_takes_no_more_steps(tmp_path):
    trainer = Trainer.create("dcgan", {**TINY["dcgan"], "steps": 1}, squares(), None, tmp_path)
    trainer.step()
    assert trainer.done
    with pytest.raises(RuntimeError, match="1 steps done"):
        trainer.step()
