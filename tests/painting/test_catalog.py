"""The catalog's typed API, on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import hashlib
import math
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from painting.catalog import Catalog
from painting.errors import CorruptRecord, InvalidId, NotFound
from painting.params import MAX_STYLES, Params
from painting.progress import ProgressPoint
from painting.records import (
    FINISHED,
    UNFINISHED,
    PaintingRecord,
    Status,
    StyleImage,
    check_painting_id,
    new_painting_id,
)


def img(n: int) -> str:
    """A well-formed image id (the catalog does not need the image to exist)."""
    return hashlib.sha256(str(n).encode()).hexdigest()


def make(catalog: Catalog, n_styles: int = 1, **kwargs: Any) -> PaintingRecord:
    kwargs.setdefault("params", Params())
    return catalog.create(content_image=img(0), style_images=[img(i + 1) for i in range(n_styles)], **kwargs)


def point(iteration: int, total: float = 10.0) -> ProgressPoint:
    return ProgressPoint(
        iteration=iteration,
        evaluations=iteration + 1,
        total_loss=total,
        content_loss=1.0,
        style_loss=2.0,
        tv_loss=0.5,
        elapsed_s=0.25 * iteration,
    )


def test_create_then_get_round_trips(catalog: Catalog) -> None:
    params = Params(size=128, iterations=7, style_blend=[3.0, 1.0], seed=42)
    rec = catalog.create(
        params=params,
        content_image=img(0),
        style_images=[img(1), img(2)],
        remote_url="http://studio/v1/jobs/x",
    )
    check_painting_id(rec.id)
    assert rec.status is Status.QUEUED and not rec.finished
    assert rec.params == params
    assert rec.styles == (StyleImage(img(1), 0.75), StyleImage(img(2), 0.25))
    assert rec.iteration == 0 and rec.iterations == 7 and rec.attempts == 0
    assert rec.preview_image is None and rec.result_image is None and rec.error is None
    assert rec.remote_url == "http://studio/v1/jobs/x"
    assert rec.created_at.tzinfo is not None and rec.created_at.utcoffset() == timedelta(0)
    assert rec.created_at == rec.updated_at
    assert catalog.get(rec.id) == rec
    assert (rec.content_image, rec.style_images) == (img(0), (img(1), img(2)))


def test_get_refuses_unknown_and_malformed_ids(catalog: Catalog) -> None:
    with pytest.raises(NotFound):
        catalog.get(new_painting_id())
    for bad in ["../x", "", "A" * 32, "a" * 31, "a" * 33, "a" * 31 + "\n", None]:
        with pytest.raises(InvalidId):
            catalog.get(bad)  # type: ignore[arg-type]


def test_create_refuses_bad_input(catalog: Catalog) -> None:
    with pytest.raises(InvalidId):
        catalog.create(params=Params(), content_image="../../etc/passwd", style_images=[img(1)])
    with pytest.raises(ValueError, match="style_blend has 2 weights"):
        catalog.create(params=Params(style_blend=[1.0, 2.0]), content_image=img(0), style_images=[img(1)])
    with pytest.raises(ValueError, match="between 1 and"):
        catalog.create(params=Params(), content_image=img(0), style_images=[])
    with pytest.raises(TypeError):
        catalog.create(params={"size": 100}, content_image=img(0), style_images=[img(1)])  # type: ignore[arg-type]
    assert catalog.count() == 0


def test_newest_first_with_paging_and_filters(catalog: Catalog) -> None:
    made = [make(catalog) for _ in range(7)]
    catalog.transition(made[2].id, Status.DONE)
    newest = list(reversed(made))
    assert [r.id for r in catalog.newest(limit=3)] == [r.id for r in newest[:3]]
    assert [r.id for r in catalog.newest(limit=3, offset=3)] == [r.id for r in newest[3:6]]
    assert [r.id for r in catalog.newest(limit=3, offset=6)] == [newest[6].id]
    assert catalog.newest(limit=3, offset=7) == []
    assert [r.id for r in catalog.newest(statuses={Status.DONE})] == [made[2].id]
    assert catalog.count() == 7
    assert catalog.count(statuses=FINISHED) == 1
    assert catalog.count(statuses=UNFINISHED) == 6
    with pytest.raises(ValueError):
        catalog.newest(limit=0)
    with pytest.raises(ValueError):
        catalog.newest(offset=-1)


def test_transition_applies_only_from_the_given_statuses(catalog: Catalog) -> None:
    rec = make(catalog)
    assert catalog.transition(rec.id, Status.RUNNING, from_={Status.QUEUED}, remote_id="job-1")
    assert not catalog.transition(rec.id, Status.RUNNING, from_={Status.QUEUED})
    assert catalog.transition(rec.id, Status.DONE, from_={Status.RUNNING}, result_image=img(9))
    done = catalog.get(rec.id)
    # A late "running" (default from_: unfinished statuses) cannot revive a finished painting.
    assert not catalog.transition(rec.id, Status.RUNNING)
    assert not catalog.transition(rec.id, Status.FAILED, error="late")
    assert catalog.get(rec.id) == done
    assert done.status is Status.DONE and done.remote_id == "job-1" and done.result_image == img(9)
    assert done.updated_at >= rec.updated_at
    with pytest.raises(NotFound):
        catalog.transition(new_painting_id(), Status.RUNNING)


def test_transition_bumps_attempts_and_checks_fields(catalog: Catalog) -> None:
    rec = make(catalog)
    assert catalog.transition(rec.id, Status.WAITING_FOR_STUDIO, bump_attempts=True, error="Studio down")
    assert catalog.transition(rec.id, Status.WAITING_FOR_STUDIO, bump_attempts=True)
    got = catalog.get(rec.id)
    assert got.attempts == 2 and got.status is Status.WAITING_FOR_STUDIO and got.error == "Studio down"
    with pytest.raises(TypeError, match="unknown painting fields: status"):
        catalog.transition(rec.id, Status.RUNNING, status="done")
    with pytest.raises(InvalidId):
        catalog.transition(rec.id, Status.RUNNING, result_image="/etc/passwd")
    with pytest.raises(ValueError):
        catalog.transition(rec.id, Status.RUNNING, iteration=-1)
    with pytest.raises(ValueError):
        catalog.transition(rec.id, "exploded")  # type: ignore[arg-type]
    assert catalog.get(rec.id) == got


def test_only_one_of_many_concurrent_transitions_wins(catalog: Catalog) -> None:
    rec = make(catalog)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def claim(n: int) -> None:
        barrier.wait()
        wins.append(catalog.transition(rec.id, Status.RUNNING, from_={Status.QUEUED}, remote_id=f"w{n}"))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_update_sets_fields_and_respects_only_if(catalog: Catalog) -> None:
    rec = make(catalog)
    assert catalog.update(rec.id, remote_cursor="17", remote_id="job-9")
    assert catalog.get(rec.id).remote_cursor == "17"
    assert not catalog.update(rec.id, only_if={Status.RUNNING}, remote_cursor="18")
    assert catalog.get(rec.id).remote_cursor == "17"
    long_error = "x" * 20_000
    assert catalog.update(rec.id, error=long_error)
    stored = catalog.get(rec.id).error
    assert stored is not None and len(stored) == 10_000 and stored.endswith("…")
    with pytest.raises(ValueError):
        catalog.update(rec.id, remote_url="h" * 3000)
    with pytest.raises(NotFound):
        catalog.update(new_painting_id(), remote_cursor="1")


def test_progress_history_is_appended_and_replaced_per_iteration(catalog: Catalog) -> None:
    rec = make(catalog)
    catalog.transition(rec.id, Status.RUNNING)
    assert catalog.record_progress(rec.id, point(2), preview_image=img(20))
    assert catalog.record_progress(rec.id, point(1))
    assert catalog.record_progress(rec.id, point(3, total=math.inf))
    assert catalog.record_progress(rec.id, point(2, total=5.0))  # a resumed run repeats iteration 2
    history = catalog.progress(rec.id)
    assert [p.iteration for p in history] == [1, 2, 3]
    assert history[1] == point(2, total=5.0)
    assert math.isnan(history[2].total_loss)  # non-finite losses are kept as NaN
    got = catalog.get(rec.id)
    assert got.iteration == 2 and got.preview_image == img(20)
    assert catalog.transition(rec.id, Status.CANCELLED)
    assert not catalog.record_progress(rec.id, point(4))  # a late frame after cancel is dropped
    assert [p.iteration for p in catalog.progress(rec.id)] == [1, 2, 3]
    with pytest.raises(NotFound):
        catalog.progress(new_painting_id())
    with pytest.raises(NotFound):
        catalog.record_progress(new_painting_id(), point(1))


def test_delete_removes_the_record_and_its_history(catalog: Catalog) -> None:
    keep, gone = make(catalog), make(catalog, n_styles=3)
    catalog.record_progress(gone.id, point(1))
    catalog.record_progress(keep.id, point(1))
    assert catalog.delete(gone.id)
    assert not catalog.delete(gone.id)
    with pytest.raises(NotFound):
        catalog.get(gone.id)
    with pytest.raises(NotFound):
        catalog.progress(gone.id)
    assert [r.id for r in catalog.newest()] == [keep.id]
    assert len(catalog.progress(keep.id)) == 1
    assert {r.painting_id for r in catalog.image_references()} == {keep.id}


def test_unfinished_lists_work_to_resume_oldest_first(catalog: Catalog) -> None:
    a, b, c, d = (make(catalog) for _ in range(4))
    catalog.transition(b.id, Status.RUNNING)
    catalog.transition(c.id, Status.FAILED, error="boom")
    catalog.transition(d.id, Status.WAITING_FOR_STUDIO)
    assert [r.id for r in catalog.unfinished()] == [a.id, b.id, d.id]


def test_idempotency_key_makes_one_painting(catalog: Catalog) -> None:
    first = make(catalog, idempotency_key="gallery-painting-1")
    again = make(catalog, n_styles=2, idempotency_key="gallery-painting-1")
    assert again == first
    assert catalog.count() == 1
    assert catalog.find_by_idempotency_key("gallery-painting-1") == first
    assert catalog.find_by_idempotency_key("nope") is None


def test_scopes_keep_services_apart_in_one_database(catalog: Catalog, database_url: str) -> None:
    mine = make(catalog)
    with Catalog(database_url, scope="studio") as other:
        theirs = make(other, idempotency_key="k")
        make(catalog, idempotency_key="k")  # same key, other scope: a different painting
        assert [r.id for r in other.newest()] == [theirs.id]
        with pytest.raises(NotFound):
            other.get(mine.id)
        assert not other.delete(mine.id)
        assert {r.painting_id for r in catalog.image_references()} >= {mine.id, theirs.id}
    assert catalog.count() == 2


def test_a_record_that_no_longer_validates_is_reported(catalog: Catalog) -> None:
    rec = make(catalog)
    with catalog._write() as s:  # tamper as a bad migration or a hand edit would
        s.execute(sa.text("UPDATE paintings SET params = :p WHERE id = :id"), {"p": '{"size": 1}', "id": rec.id})
    with pytest.raises(CorruptRecord, match=rec.id):
        catalog.get(rec.id)
    assert [pid for pid, _ in catalog.invalid_records()] == [rec.id]


def test_image_references_name_every_role(catalog: Catalog) -> None:
    rec = make(catalog, n_styles=2)
    catalog.transition(rec.id, Status.DONE, preview_image=img(7), result_image=img(8))
    refs = {(r.painting_id, r.role, r.image_id) for r in catalog.image_references()}
    assert refs == {
        (rec.id, "content", img(0)),
        (rec.id, "style", img(1)),
        (rec.id, "style", img(2)),
        (rec.id, "preview", img(7)),
        (rec.id, "result", img(8)),
    }
    assert catalog.referenced_images() == {img(0), img(1), img(2), img(7), img(8)}


params_strategy = st.builds(
    Params,
    size=st.integers(32, 2048),
    iterations=st.integers(1, 5000),
    content_weight=st.floats(0, 1e6),
    style_weight=st.floats(0, 1e6),
    tv_weight=st.floats(0, 1e6),
    seed=st.integers(0, 2**32 - 1),
    init=st.sampled_from(["content", "noise", "style"]),
    style_scale=st.floats(0.1, 4.0),
    preserve_colors=st.booleans(),
    preview_every=st.integers(0, 5000),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=params_strategy, n_styles=st.integers(1, MAX_STYLES), text=st.text(max_size=200))
def test_records_round_trip(catalog: Catalog, params: Params, n_styles: int, text: str) -> None:
    clean = text.replace("\x00", "")
    rec = make(catalog, n_styles=n_styles, params=params, idempotency_key=clean or None)
    catalog.update(rec.id, error=text, remote_cursor=clean)
    got = catalog.get(rec.id)
    assert got.params == params
    assert len(got.styles) == n_styles
    assert math.isclose(sum(s.weight for s in got.styles), 1.0)
    assert got.error == text.replace("\x00", "\ufffd")
    assert got.remote_cursor == clean
    assert got.idempotency_key == (clean or None)
    catalog.delete(rec.id)


def test_a_latent_model_painting_has_no_photo_and_no_styles(catalog: Catalog) -> None:
    params = Params(engine="model", model="cars", seed=3)
    record = catalog.create(params=params, content_image=None, style_images=[])
    again = catalog.get(record.id)
    assert (again.content_image, again.styles, again.iterations) == (None, (), 1)
    assert again.params == params and again.image_ids() == frozenset()
    assert all(ref.painting_id != record.id for ref in catalog.image_references())


def test_only_a_model_painting_may_go_without_a_photo_and_it_takes_no_styles(catalog: Catalog) -> None:
    style = "a" * 64
    with pytest.raises(ValueError, match="needs a photo"):
        catalog.create(params=Params(), content_image=None, style_images=[style])
    with pytest.raises(ValueError, match="takes no style images"):
        catalog.create(params=Params(engine="model", model="v"), content_image=None, style_images=[style])
    assert catalog.count() == 0


# -- loss weights changed while a painting runs --------------------------------------------------

ASKED = {"content_weight": 1.0, "style_weight": 100.0, "tv_weight": 0.1}


def test_new_weights_change_the_params_and_are_kept_in_the_history(catalog: Catalog) -> None:
    rec = make(catalog)
    changed, did = catalog.change_weights(rec.id, {"style_weight": 100})
    assert did and changed.params.style_weight == 100.0 and changed.params.iterations == rec.params.iterations
    assert [(c.iteration, c.weights) for c in changed.weight_changes] == [(None, ASKED)]
    again = catalog.get(rec.id)  # stored: what a resume reads
    assert again.params == changed.params and again.weight_changes == changed.weight_changes
    assert again.weight_changes[0].at.tzinfo is not None
    same, did = catalog.change_weights(rec.id, {"style_weight": 100.0})  # what it has already: no change
    assert not did and len(same.weight_changes) == 1


def test_weights_out_of_range_or_for_another_engine_or_a_finished_painting_change_nothing(catalog: Catalog) -> None:
    from painting.errors import PaintingFinished

    rec = make(catalog)
    for bad in ({"tv_weight": -1}, {"size": 64}, {}, {"style_weight": float("nan")}, {"style_weight": True}):
        with pytest.raises(ValueError):
            catalog.change_weights(rec.id, bad)
    fast = make(catalog, params=Params(engine="fast"))
    with pytest.raises(ValueError, match="fast engine"):
        catalog.change_weights(fast.id, {"style_weight": 3})
    catalog.transition(rec.id, Status.DONE)
    with pytest.raises(PaintingFinished, match="has ended"):
        catalog.change_weights(rec.id, {"style_weight": 3})
    with pytest.raises(NotFound):
        catalog.change_weights(new_painting_id(), {"style_weight": 3})
    assert catalog.get(rec.id).params == rec.params and catalog.get(rec.id).weight_changes == ()


def test_a_change_is_marked_at_the_iteration_first_painted_with_it(catalog: Catalog) -> None:
    rec = make(catalog)
    catalog.change_weights(rec.id, {"style_weight": 100})
    catalog.change_weights(rec.id, {"tv_weight": 1})
    latest = {**ASKED, "tv_weight": 1.0}
    assert not catalog.mark_weights_applied(rec.id, 3, {**ASKED, "style_weight": 5.0})  # neither asked for these
    # The worker rounds through float32: close enough is the same.
    assert catalog.mark_weights_applied(rec.id, 4, {**ASKED, "tv_weight": 0.10000000149})
    assert [c.iteration for c in catalog.get(rec.id).weight_changes] == [4, None]
    assert catalog.mark_weights_applied(rec.id, 9, latest)
    assert not catalog.mark_weights_applied(rec.id, 12, latest)  # nothing left to mark
    assert [c.iteration for c in catalog.get(rec.id).weight_changes] == [4, 9]
    # Two changes the worker took together (the later won) both took effect at the same iteration.
    catalog.change_weights(rec.id, {"content_weight": 2})
    catalog.change_weights(rec.id, {"content_weight": 3})
    assert catalog.mark_weights_applied(rec.id, 15, {**latest, "content_weight": 3.0})
    assert [c.iteration for c in catalog.get(rec.id).weight_changes] == [4, 9, 15, 15]


def test_a_forwarded_change_is_an_intent_that_cancel_and_forget_replace(catalog: Catalog) -> None:
    rec = make(catalog, remote_id="job-w")
    catalog.change_weights(rec.id, {"style_weight": 20}, forward_remote=True)
    action, asked, _, _ = catalog.remote_action("job-w") or ("none", None, None, "job")
    assert action == "weights" and asked is not None
    assert catalog.find_by_remote_id("job-w") == catalog.get(rec.id)
    assert catalog.find_by_remote_id("job-none") is None
    # Asked anew while the last weights were on their way: confirming those leaves the new intent.
    catalog.change_weights(rec.id, {"style_weight": 30}, forward_remote=True)
    catalog.remove_remote_action("job-w", "weights", asked_by=asked)
    again = catalog.remote_action("job-w")
    assert again is not None and again[1] > asked
    catalog.remove_remote_action("job-w", "weights", asked_by=again[1])
    assert catalog.remote_action("job-w") is None
    # A cancel replaces weights; weights never replace a cancel.
    catalog.add_remote_action("job-w", "weights")
    catalog.add_remote_action("job-w", "cancel")
    catalog.add_remote_action("job-w", "weights")
    assert catalog.remote_actions() == [("job-w", "cancel")]
    catalog.add_remote_action("job-w", "forget")
    assert catalog.remote_actions() == [("job-w", "forget")]


def test_a_painting_takes_a_bounded_number_of_changes(catalog: Catalog) -> None:
    from painting.catalog import MAX_WEIGHT_CHANGES

    rec = make(catalog)
    for i in range(MAX_WEIGHT_CHANGES):
        catalog.change_weights(rec.id, {"style_weight": float(i + 1)})
    with pytest.raises(ValueError, match=f"at most {MAX_WEIGHT_CHANGES} changes"):
        catalog.change_weights(rec.id, {"style_weight": 0.5})
    assert catalog.get(rec.id).params.style_weight == MAX_WEIGHT_CHANGES


def test_one_holder_at_a_time_drives_a_painting_until_its_lease_runs_out(catalog: Catalog) -> None:
    first, second = make(catalog), make(catalog)
    assert catalog.claimable("a") == [first.id, second.id]
    assert catalog.claim(first.id, "a", 30)
    assert not catalog.claim(first.id, "b", 30)  # held, and the lease runs
    assert catalog.claim(first.id, "a", 30)  # its holder keeps it
    assert catalog.claimable("b") == [second.id]
    assert catalog.claimable("a") == [first.id, second.id]  # a holder restarted under its name takes its own
    assert catalog.renew("a", 30) == {first.id}
    assert catalog.renew("b", 30) == set()
    # A lease that ran out (its holder died) is anyone's; the old holder learns at its next renewal.
    assert catalog.claim(second.id, "a", -1)
    assert catalog.claim(second.id, "b", 30)
    assert catalog.renew("a", 30) == {first.id}
    # Released (a clean stop): taken at once.
    catalog.release("a")
    assert catalog.claim(first.id, "b", 30)
    # A finished painting is nobody's to drive.
    catalog.transition(first.id, Status.DONE)
    assert not catalog.claim(first.id, "b", 30)
    assert catalog.renew("b", 30) == {second.id}
    with pytest.raises(ValueError):
        catalog.claim(second.id, "", 30)


def test_a_painting_moved_off_a_gone_job_is_queued_again_and_the_job_forgotten_there(catalog: Catalog) -> None:
    rec = make(catalog, remote_id="job-gone", remote_url="http://gpu-1:8100")
    catalog.update(rec.id, remote_cursor="7")
    catalog.transition(rec.id, Status.WAITING_FOR_STUDIO)
    assert not catalog.move_off_remote(rec.id, "job-other")  # no longer on that job: nothing changes
    assert catalog.move_off_remote(rec.id, "job-gone", error="moved")
    moved = catalog.get(rec.id)
    assert (moved.status, moved.remote_id, moved.remote_url, moved.remote_cursor) == (Status.QUEUED, None, None, None)
    assert (moved.attempts, moved.error) == (rec.attempts + 1, "moved")
    due = catalog.remote_action("job-gone")
    assert due is not None and (due.action, due.remote_url) == ("forget", "http://gpu-1:8100")
    assert not catalog.move_off_remote(rec.id, "job-gone")  # twice: once
    # A cancel and a delete name the Studio of the job too.
    other = make(catalog, remote_id="job-2", remote_url="http://gpu-2:8100")
    catalog.transition(other.id, Status.CANCELLED, cancel_remote=True)
    due = catalog.remote_action("job-2")
    assert due is not None and (due.action, due.remote_url, due.target) == ("cancel", "http://gpu-2:8100", "job")
    with pytest.raises(NotFound):
        catalog.move_off_remote("0" * 32, "job-gone")


def test_a_painting_made_to_resume_starts_at_its_point(catalog: Catalog) -> None:
    rec = make(catalog, params=Params(iterations=60), resume_from=(img(9), 40))
    assert (rec.preview_image, rec.preview_iteration, rec.iteration) == (img(9), 40, 40)
    with pytest.raises(ValueError):
        make(catalog, params=Params(iterations=60), resume_from=(img(9), 60))
    with pytest.raises(InvalidId):
        make(catalog, params=Params(iterations=60), resume_from=("../x", 4))
