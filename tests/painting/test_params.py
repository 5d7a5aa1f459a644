import json

import pytest
from pydantic import ValidationError

from painting.params import DEFAULT_STYLE_LAYERS, Params, check_inputs, parse_params


def test_defaults_follow_the_classic_keras_example():
    p = Params()
    assert (p.size, p.content_weight, p.style_weight, p.tv_weight) == (400, 1.0, 10.0, 0.1)
    assert p.content_layer == "block5_conv2"
    assert p.style_layers == DEFAULT_STYLE_LAYERS


def test_every_field_has_a_description_default_and_the_schema_shows_ranges():
    schema = Params.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        assert "default" in prop, name
    assert schema["properties"]["size"]["minimum"] == 32
    assert schema["properties"]["size"]["maximum"] == 4096


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"size": 10}, "size"),
        ({"iterations": 0}, "iterations"),
        ({"style_weight": -1}, "style_weight"),
        ({"init": "picasso"}, "init"),
        ({"content_layer": "block9_conv1"}, "content_layer"),
        ({"style_layers": {}}, "style_layers"),
        ({"style_layers": {"block1_conv1": 0}}, "style_layers"),
        ({"style_blend": [0, 0]}, "style_blend"),
        ({"seed": -3}, "seed"),
        ({"colour": True}, "colour"),
    ],
)
def test_invalid_values_are_rejected_with_a_message_naming_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        parse_params(data)
    with pytest.raises(ValidationError):
        Params(**data)


def test_parse_params_accepts_json_text_dicts_and_nothing():
    assert parse_params(None) == Params()
    assert parse_params("") == Params()
    assert parse_params(json.dumps({"size": 64})).size == 64
    assert parse_params({"iterations": 7}).iterations == 7
    with pytest.raises(ValueError, match="JSON"):
        parse_params("{not json")


def test_blend_weights_are_normalised_and_must_match_the_number_of_styles():
    assert Params().blend_for(3) == pytest.approx([1 / 3] * 3)
    assert Params(style_blend=[3, 1]).blend_for(2) == pytest.approx([0.75, 0.25])
    with pytest.raises(ValueError, match="2 weights but there are 3"):
        Params(style_blend=[1, 1]).blend_for(3)


# --- engines ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"engine": "fast", "iterations": 50}, "iterations: does not apply to the fast engine"),
        ({"engine": "fast", "init": "draft"}, "init: does not apply to the fast engine"),
        ({"engine": "gatys", "strength": 0.5}, "strength: does not apply to the gatys engine"),
        ({"engine": "model", "model": "vangogh", "style_weight": 3}, "style_weight: does not apply to the model"),
        ({"model": "vangogh"}, "model: does not apply to the gatys engine"),
        ({"engine": "model"}, "model: the model engine needs the name"),
        ({"engine": "fast", "strength": 1.5}, "strength: Input should be less than or equal to 1"),
        ({"engine": "model", "model": "../etc/passwd"}, "model: String should match pattern"),
        ({"engine": "picasso"}, "engine: Input should be 'gatys', 'fast' or 'model'"),
    ],
)
def test_a_field_that_does_not_apply_to_the_engine_is_refused_by_name(data, named):
    with pytest.raises(ValueError, match=named):
        parse_params(data)


def test_a_painting_is_stored_and_sent_with_the_fields_of_its_engine_only():
    fast = parse_params({"engine": "fast", "strength": 0.4, "size": 300})
    assert fast.model_dump(mode="json") == {
        "engine": "fast",
        "size": 300,
        "strength": 0.4,
        "style_blend": None,
        "preserve_colors": False,
        "builtin_styles": None,
    }
    assert fast.steps == 1  # one pass: a progress bar of one step
    gatys = parse_params({"iterations": 70})
    assert "strength" not in gatys.model_dump(mode="json") and gatys.steps == 70
    for params in (fast, gatys, parse_params({"engine": "model", "model": "v1.onnx"})):
        # What is stored reads back as the same painting, and is accepted again when sent to Studio.
        assert parse_params(json.dumps(params.model_dump(mode="json"))) == params


def test_a_record_stored_before_engines_existed_reads_back_as_a_gatys_painting():
    old = {"size": 64, "iterations": 5, "init": "noise", "preview_every": 10}
    assert parse_params(old).engine == "gatys"


def test_the_schema_says_which_engines_read_each_field():
    properties = Params.model_json_schema()["properties"]
    assert properties["engine"]["x-engines"] == ["gatys", "fast", "model"]
    assert properties["iterations"]["x-engines"] == ["gatys"]
    assert properties["strength"]["x-engines"] == ["fast"]
    assert properties["size"]["x-engines"] == ["gatys", "fast", "model"]
    assert properties["model"]["x-engines"] == ["model"]
    assert properties["builtin_styles"]["x-engines"] == ["fast"]


def test_built_in_styles_take_one_weight_each_and_replace_style_images():
    weights = [0.0] * 26
    weights[4] = 2.0
    params = parse_params({"engine": "fast", "builtin_styles": weights})
    assert not params.takes_styles
    check_inputs(params, content=True, styles=0)
    with pytest.raises(ValueError, match="not both"):
        check_inputs(params, content=True, styles=1)
    with pytest.raises(ValueError, match="at least 26 items"):
        parse_params({"engine": "fast", "builtin_styles": [1.0]})
    with pytest.raises(ValueError, match="at least one above 0"):
        parse_params({"engine": "fast", "builtin_styles": [0.0] * 26})


def test_a_change_of_weights_is_checked_like_the_params_and_names_the_field():
    from painting.params import WEIGHT_FIELDS, LossWeights, parse_weights, weights_of

    assert parse_weights({"style_weight": 100}) == {"style_weight": 100.0}
    assert parse_weights({"tv_weight": 0, "content_weight": None}) == {"tv_weight": 0.0}  # null: unchanged
    for bad, words in (
        ({}, "at least one of"),
        ({"tv_weight": -1}, "tv_weight"),
        ({"style_weight": 1e7}, "style_weight"),
        ({"style_weight": "10"}, "style_weight"),
        ({"style_weight": float("nan")}, "style_weight"),
        ({"size": 64}, "size"),
        ([1.0], "must be an object"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_weights(bad)
    # The change's schema gives each weight the range Params gives it (the page and the API docs show it).
    ours, theirs = LossWeights.model_json_schema()["properties"], Params.model_json_schema()["properties"]
    for name in WEIGHT_FIELDS:
        number = next(s for s in ours[name]["anyOf"] if s.get("type") == "number")
        assert (number["minimum"], number["maximum"]) == (theirs[name]["minimum"], theirs[name]["maximum"])
    assert weights_of(Params(style_weight=3)) == {"content_weight": 1.0, "style_weight": 3.0, "tv_weight": 0.1}
