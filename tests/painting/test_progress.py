"""The one wire shape of a loss-curve point: every hop writes it with `to_json` and reads it with `from_json`."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from painting.progress import LOSS_TERMS, ProgressPoint, json_safe

POINT = ProgressPoint(12, 15, 9.5, 2.0, 7.0, 0.5, 3.25)


def wire() -> dict[str, Any]:
    return json.loads(json.dumps(POINT.to_json()))


def test_the_shape_and_a_round_trip_through_json_text():
    assert wire() == {
        "iteration": 12,
        "evaluations": 15,
        "loss": {"total": 9.5, "content": 2.0, "style": 7.0, "tv": 0.5},
        "elapsed_s": 3.25,
    }
    assert ProgressPoint.from_json(wire()) == POINT
    assert tuple(POINT.loss) == LOSS_TERMS


def test_a_diverged_loss_travels_as_null_and_comes_back_as_nan():
    point = ProgressPoint(1, 1, math.nan, math.inf, -math.inf, 0.0, 0.1)
    text = json.dumps(point.to_json(), allow_nan=False)  # strict JSON: would raise on a NaN
    back = ProgressPoint.from_json(json.loads(text))
    assert all(math.isnan(v) for v in (back.total_loss, back.content_loss, back.style_loss))
    assert back.tv_loss == 0.0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d["loss"].pop("style"), "`loss.style` is missing"),
        (lambda d: d["loss"].update(styl=d["loss"].pop("style")), "`loss.style` is missing"),
        (lambda d: d.pop("elapsed_s"), "`elapsed_s` is missing"),
        (lambda d: d.pop("loss"), "`loss` must be an object"),
        (lambda d: d.update(losses=d.pop("loss")), "`loss` must be an object"),
        (lambda d: d.pop("iteration"), "`iteration` must be a whole number"),
        (lambda d: d.update(iteration="12"), "`iteration` must be a whole number"),
        (lambda d: d.update(evaluations=True), "`evaluations` must be a whole number"),
        (lambda d: d.update(iteration=-1), "`iteration` must be a whole number"),
        (lambda d: d["loss"].update(total="9.5"), "`loss.total` must be a number or null"),
    ],
)
def test_a_renamed_missing_or_mistyped_key_is_an_error_never_a_nan(change, words):
    data = wire()
    change(data)
    with pytest.raises(ValueError, match=words):
        ProgressPoint.from_json(data)


def test_keys_beside_the_point_are_ignored():
    assert ProgressPoint.from_json({**wire(), "job": "j", "iterations": 100, "preview_image": None}) == POINT


def test_json_safe_replaces_every_non_finite_float_at_any_depth():
    assert json_safe({"a": [1.0, math.nan, (math.inf, 2)], "b": {"c": -math.inf}, "d": "nan"}) == {
        "a": [1.0, None, [None, 2]],
        "b": {"c": None},
        "d": "nan",
    }


def test_a_point_may_carry_the_weights_in_force_and_one_without_reads_and_writes_as_before():
    plain = ProgressPoint(3, 4, 9.0, 1.0, 7.0, 1.0, 0.5)
    assert "weights" not in plain.to_json() and ProgressPoint.from_json(plain.to_json()) == plain
    weights = {"content_weight": 1.0, "style_weight": 100.0, "tv_weight": 0.1}
    marked = ProgressPoint(3, 4, 9.0, 1.0, 7.0, 1.0, 0.5, weights)
    text = json.dumps(marked.to_json())
    assert json.loads(text)["weights"] == weights
    assert ProgressPoint.from_json(json.loads(text)) == marked
    for bad in ({}, [1.0], {"style_weight": "high"}, {"style_weight": None}):
        with pytest.raises(ValueError, match="weights"):
            ProgressPoint.from_json({**plain.to_json(), "weights": bad})
