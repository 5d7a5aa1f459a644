"""The engine takes new loss weights while it paints (issue 12): `weights_update` is asked before each
iteration, and a mapping it gives is the objective from that iteration on."""

from __future__ import annotations

import pytest

from painting.params import Params

pytestmark = pytest.mark.slow
DEFAULTS = {"content_weight": 1.0, "style_weight": 10.0, "tv_weight": 0.1}


def test_a_weight_change_takes_effect_at_the_next_iteration(engine, content_rgb, style_rgb):
    params = Params(size=32, iterations=6, init="content", preview_every=0)
    asked: list[int] = []

    def update():
        asked.append(len(asked) + 1)
        return {"style_weight": 1000.0, "tv_weight": 0.0} if len(asked) == 4 else None

    seen: list = []  # pycasso.engine.Iterate, imported only with TensorFlow
    engine.paint(content_rgb, [style_rgb], params, seen.append, weights_update=update)
    assert [it.iteration for it in seen] == [1, 2, 3, 4, 5, 6]
    assert asked == [1, 2, 3, 4, 5, 6]  # once before each iteration
    assert [it.weights_changed for it in seen] == [False, False, False, True, False, False]
    assert [it.weights["style_weight"] for it in seen] == [10.0, 10.0, 10.0, 1000.0, 1000.0, 1000.0]
    assert seen[0].weights == DEFAULTS and seen[3].weights == {**DEFAULTS, "style_weight": 1000.0, "tv_weight": 0.0}
    # The terms are weighted: smoothness is gone from iteration 4 on, style weighs 100 times more.
    assert all(it.loss.tv > 0 for it in seen[:3]) and all(it.loss.tv == 0 for it in seen[3:])
    before, after = seen[2].loss.style / 10.0, seen[3].loss.style / 1000.0
    assert 0.2 < after / before < 5  # the same picture one step on, scored under the new weight
