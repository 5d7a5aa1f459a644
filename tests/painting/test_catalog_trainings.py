"""The catalog's training runs and their loss curves, on real SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest

from painting.catalog import Catalog
from painting.errors import InvalidId, NotFound
from painting.records import Status, TrainingPoint

IMAGE = "a" * 64


def make(catalog: Catalog, **more: object):
    fields: dict = {
        "kind": "cyclegan",
        "params": {"kind": "cyclegan", "steps": 40},
        "steps": 40,
        "model_name": "monet",
        "counts": {"photos": 5, "paintings": 4},
        **more,
    }
    return catalog.create_training(**fields)


def test_a_training_is_stored_read_and_listed(catalog: Catalog) -> None:
    first = make(catalog)
    second = make(catalog, kind="dcgan", counts={"images": 20}, model_name="cars")
    assert (first.status, first.step, first.steps, first.losses, first.attempts) == (Status.QUEUED, 0, 40, None, 0)
    assert first.counts == {"photos": 5, "paintings": 4} and first.params == {"kind": "cyclegan", "steps": 40}
    assert catalog.get_training(first.id) == first
    assert [t.id for t in catalog.newest_trainings()] == [second.id, first.id]
    assert [t.id for t in catalog.unfinished_trainings()] == [first.id, second.id]
    assert catalog.count() == 0  # paintings are apart
    with pytest.raises(NotFound):
        catalog.get_training("0" * 32)
    with pytest.raises(InvalidId):
        catalog.get_training("../x")
    with pytest.raises(ValueError):
        make(catalog, kind="vae")


def test_an_idempotency_key_used_before_returns_that_run(catalog: Catalog) -> None:
    first = make(catalog, idempotency_key="k-1")
    assert make(catalog, idempotency_key="k-1") == first
    assert catalog.find_training_by_idempotency_key("k-1") == first
    assert len(catalog.newest_trainings()) == 1


def test_progress_moves_the_run_and_a_resumed_step_replaces_its_point(catalog: Catalog) -> None:
    run = make(catalog)
    assert catalog.transition_training(run.id, Status.RUNNING, from_={Status.QUEUED}, bump_attempts=True)
    for step in (1, 2, 3):
        point = TrainingPoint(step, {"generator": 3.0 - step, "discriminator": 0.5}, 0.25, 0.25 * step)
        sample = IMAGE if step == 2 else None
        assert catalog.record_training_progress(
            run.id, point, sample_image=sample, checkpoint_step=2 if step >= 2 else None
        )
    now = catalog.get_training(run.id)
    assert (now.step, now.losses, now.seconds_per_step) == (3, {"generator": 0.0, "discriminator": 0.5}, 0.25)
    assert (now.sample_image, now.checkpoint_step, now.attempts) == (IMAGE, 2, 1)  # kept when a step has none
    # Resumed from its checkpoint at 2: step 3 again replaces its point; a diverged loss stays NaN.
    assert catalog.record_training_progress(run.id, TrainingPoint(3, {"generator": math.inf}, 0.5, 9.0))
    curve = catalog.training_progress(run.id)
    assert [p.step for p in curve] == [1, 2, 3] and math.isnan(curve[-1].losses["generator"])
    assert {r.image_id for r in catalog.image_references() if r.role == "sample"} == {IMAGE}
    assert catalog.transition_training(run.id, Status.DONE)
    assert not catalog.record_training_progress(run.id, TrainingPoint(4, {"generator": 1.0}, 0.1, 1.0))
    assert not catalog.transition_training(run.id, Status.RUNNING)  # a finished run never runs again
    with pytest.raises(TypeError):
        catalog.transition_training(run.id, Status.FAILED, colour="red")


def test_deleting_a_run_removes_its_curves_and_lets_its_sample_go(catalog: Catalog) -> None:
    run = make(catalog)
    catalog.record_training_progress(run.id, TrainingPoint(1, {"generator": 1.0}, 0.1, 0.1), sample_image=IMAGE)
    assert catalog.delete_training(run.id)
    assert not catalog.delete_training(run.id)
    assert IMAGE not in catalog.referenced_images()
    with pytest.raises(NotFound):
        catalog.training_progress(run.id)


def test_a_point_is_read_from_json_strictly() -> None:
    point = TrainingPoint.from_json({"step": 3, "losses": {"g": 1, "d": None}, "seconds_per_step": 0.5})
    assert point.step == 3 and point.losses["g"] == 1.0 and math.isnan(point.losses["d"])
    for bad in ({"step": -1, "losses": {}}, {"step": 1, "losses": {"g": "x"}}, {"step": 1, "losses": []}, [1]):
        with pytest.raises(ValueError):
            TrainingPoint.from_json(bad)


def test_a_cancel_or_delete_stores_what_studio_must_do_to_the_run_apart_from_jobs(catalog: Catalog) -> None:
    run = make(catalog, remote_id="studio-run-1", remote_url="http://gpu-1:8100")
    catalog.add_remote_action("job-9", "cancel")  # a painting's job: not the training's business
    assert catalog.transition_training(run.id, Status.CANCELLED, cancel_remote=True)
    due = catalog.remote_action("studio-run-1")
    assert due is not None and (due.action, due.remote_url, due.target) == ("cancel", "http://gpu-1:8100", "training")
    assert catalog.remote_actions(target="training") == [("studio-run-1", "cancel")]
    assert catalog.remote_actions() == [("job-9", "cancel")]
    assert catalog.delete_training(run.id, forget_remote=True)
    assert catalog.remote_actions(target="training") == [("studio-run-1", "forget")]  # a forget replaces it
    with pytest.raises(ValueError):
        catalog.add_remote_action("studio-run-2", "weights", target="training")
