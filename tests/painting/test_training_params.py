"""A training run's parameters: one schema, defaults per kind, ranges, and fields that apply to one kind only."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from painting.params import Params
from painting.training import (
    ENGINE_KEYS,
    KIND_FIELDS,
    KINDS,
    MIN_IMAGES,
    TrainingParams,
    collections_for,
    limited_training_schema,
    parse_training_params,
)


def test_each_kind_fills_its_own_defaults_when_resolved():
    cyclegan = TrainingParams().resolved()
    assert cyclegan.kind == "cyclegan"
    assert (cyclegan.batch_size, cyclegan.image_size, cyclegan.cycle_weight, cyclegan.identity_weight) == (
        1,
        256,
        10.0,
        5.0,
    )
    dcgan = TrainingParams(kind="dcgan").resolved()
    assert (dcgan.batch_size, dcgan.image_size, dcgan.latent_dim) == (64, 32, 100)
    assert dcgan.identity_weight is None  # a dcgan reads no identity weight: nothing to fill
    common = TrainingParams()
    assert (common.steps, common.learning_rate, common.beta1, common.filters) == (2000, 2e-4, 0.5, 64)
    assert (common.sample_every, common.checkpoint_every, common.seed, common.name) == (100, 200, 0, None)


def test_the_identity_weight_is_half_the_cycle_weight_unless_given():
    assert TrainingParams(cycle_weight=4.0).resolved().identity_weight == 2.0
    assert TrainingParams(cycle_weight=4.0, identity_weight=0.0).resolved().identity_weight == 0.0


def test_what_was_given_is_kept_and_resolving_twice_changes_nothing():
    given = TrainingParams(kind="dcgan", batch_size=8, image_size=64, latent_dim=16, filters=4)
    resolved = given.resolved()
    assert (resolved.batch_size, resolved.image_size, resolved.latent_dim, resolved.filters) == (8, 64, 16, 4)
    assert resolved.resolved() == resolved


def test_resolving_with_a_training_id_names_the_model():
    assert TrainingParams().resolved("0a1b2c3d4e5f6789").name == "cyclegan-0a1b2c3d"
    assert TrainingParams(kind="dcgan").model_name("ABCDEF0123") == "dcgan-abcdef01"
    assert TrainingParams(name="monet").resolved("0a1b2c3d4e5f").name == "monet"
    with pytest.raises(ValueError, match="name"):
        TrainingParams().model_name("../../etc")


def test_a_trained_model_s_name_is_one_a_painting_can_ask_for():
    for name in ("monet", "cyclegan-0a1b2c3d", "a", "x_1-2", "z" * 64):
        assert TrainingParams(name=name).name == name
        assert Params(engine="model", model=name).model == name


def test_to_engine_is_the_plain_dict_the_trainer_takes():
    engine = TrainingParams(steps=10, filters=4, seed=7).to_engine()
    assert list(engine) == list(ENGINE_KEYS)
    assert list(ENGINE_KEYS) == [
        "steps",
        "batch_size",
        "image_size",
        "learning_rate",
        "beta1",
        "cycle_weight",
        "identity_weight",
        "latent_dim",
        "filters",
        "seed",
    ]
    assert engine == {
        "steps": 10,
        "batch_size": 1,
        "image_size": 256,
        "learning_rate": 2e-4,
        "beta1": 0.5,
        "cycle_weight": 10.0,
        "identity_weight": 5.0,
        "latent_dim": None,  # a cyclegan has no latent vector
        "filters": 4,
        "seed": 7,
    }
    dcgan = TrainingParams(kind="dcgan", image_size=16).to_engine()
    assert (dcgan["batch_size"], dcgan["image_size"], dcgan["latent_dim"]) == (64, 16, 100)
    assert dcgan["cycle_weight"] is None and dcgan["identity_weight"] is None
    json.dumps(dcgan)  # plain values only


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "stylegan"}, "kind"),
        ({"steps": 0}, "steps"),
        ({"steps": 1_000_001}, "steps"),
        ({"steps": "5"}, "steps"),  # strict: a string is not a number
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 513}, "batch_size"),
        ({"image_size": 8}, "image_size"),
        ({"image_size": 516}, "image_size"),
        ({"image_size": 18}, "image_size"),  # a cyclegan's size is a multiple of 4
        ({"kind": "dcgan", "image_size": 48}, "image_size"),  # a dcgan's is 16, 32 or 64
        ({"kind": "dcgan", "image_size": 128}, "image_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": 0.5}, "learning_rate"),
        ({"beta1": -0.1}, "beta1"),
        ({"beta1": 1.0}, "beta1"),
        ({"cycle_weight": -1}, "cycle_weight"),
        ({"cycle_weight": 1001}, "cycle_weight"),
        ({"identity_weight": 2000}, "identity_weight"),
        ({"kind": "dcgan", "latent_dim": 1}, "latent_dim"),
        ({"kind": "dcgan", "latent_dim": 1025}, "latent_dim"),
        ({"filters": 3}, "filters"),
        ({"filters": 129}, "filters"),
        ({"sample_every": 0}, "sample_every"),
        ({"sample_every": 100_001}, "sample_every"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**31}, "seed"),
        ({"name": ""}, "name"),
        ({"name": "Monet"}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"name": "-rf"}, "name"),
        ({"name": "../x"}, "name"),
        ({"name": "a.b"}, "name"),
        ({"epochs": 5}, "epochs"),
    ],
)
def test_a_value_out_of_range_is_refused_with_a_message_naming_the_field(data, field):
    with pytest.raises(ValueError, match=field):
        parse_training_params(json.dumps(data))
    with pytest.raises(ValidationError):
        TrainingParams.model_validate(data)


@pytest.mark.parametrize("size", [16, 20, 256, 512])
def test_a_cyclegan_takes_any_multiple_of_4(size):
    assert TrainingParams(image_size=size).resolved().image_size == size


@pytest.mark.parametrize("size", [16, 32, 64])
def test_a_dcgan_takes_its_three_sizes(size):
    assert TrainingParams(kind="dcgan", image_size=size).image_size == size


def test_the_size_refusals_say_what_would_do():
    with pytest.raises(ValueError, match=r"^image_size: .*multiple of 4; 18 is not \(try 16\)$"):
        parse_training_params('{"image_size": 18}')
    with pytest.raises(ValueError, match=r"^image_size: a dcgan trains on 16, 32, 64 px images, not 48$"):
        parse_training_params('{"kind": "dcgan", "image_size": 48}')


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"latent_dim": 100}, ["latent_dim"]),
        ({"kind": "dcgan", "cycle_weight": 10}, ["cycle_weight"]),
        ({"kind": "dcgan", "identity_weight": 1, "cycle_weight": 3}, ["cycle_weight", "identity_weight"]),
        ({"kind": "dcgan", "identity_weight": None}, ["identity_weight"]),
    ],
)
def test_a_field_that_does_not_apply_to_the_kind_is_refused_by_name(data, named):
    with pytest.raises(ValueError) as caught:
        parse_training_params(data)
    message = str(caught.value)
    for name in named:
        assert f"{name}: does not apply to a {data.get('kind', 'cyclegan')} training" in message
    assert "(it reads " in message


def test_a_run_is_stored_and_sent_with_the_fields_of_its_kind_only():
    cyclegan = TrainingParams().model_dump()
    assert "latent_dim" not in cyclegan and cyclegan["cycle_weight"] == 10.0
    dcgan = TrainingParams(kind="dcgan").model_dump()
    assert "cycle_weight" not in dcgan and "identity_weight" not in dcgan and dcgan["latent_dim"] == 100
    for params in (TrainingParams(), TrainingParams(kind="dcgan", steps=3), TrainingParams(steps=5).resolved("ab12")):
        assert parse_training_params(params.model_dump_json()) == params


def test_parse_training_params_takes_json_text_dicts_and_nothing():
    assert parse_training_params(None) == TrainingParams()
    assert parse_training_params("") == TrainingParams()
    assert parse_training_params('{"kind": "dcgan", "steps": 5}').steps == 5
    assert parse_training_params({"filters": 4}).filters == 4
    with pytest.raises(ValueError, match="JSON"):
        parse_training_params("{not json")


def test_every_field_has_a_description_a_default_and_the_kinds_that_read_it():
    schema = TrainingParams.model_json_schema()
    assert set(schema["properties"]) == set(TrainingParams.model_fields)
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        assert "default" in prop, name
        assert prop["x-kinds"] == [k for k in KINDS if name == "kind" or name in KIND_FIELDS[k]], name
    assert schema["properties"]["latent_dim"]["x-kinds"] == ["dcgan"]
    assert schema["properties"]["cycle_weight"]["x-kinds"] == ["cyclegan"]
    assert (schema["properties"]["steps"]["minimum"], schema["properties"]["steps"]["maximum"]) == (1, 1_000_000)
    assert schema["additionalProperties"] is False


def test_a_deployment_s_caps_show_in_its_schema():
    schema = limited_training_schema(max_steps=500, max_image_size=128)
    steps = schema["properties"]["steps"]
    assert (steps["maximum"], steps["default"]) == (500, 500)
    (size,) = [p for p in schema["properties"]["image_size"]["anyOf"] if p.get("type") == "integer"]
    assert size["maximum"] == 128
    assert TrainingParams.model_json_schema()["properties"]["steps"]["maximum"] == 1_000_000  # not changed


def test_the_collections_and_how_many_images_each_needs():
    assert collections_for("cyclegan") == ("photos", "paintings")
    assert collections_for("dcgan") == ("images",)
    assert MIN_IMAGES == {"cyclegan": 4, "dcgan": 16}
    with pytest.raises(ValueError, match="kind"):
        collections_for("stylegan")
