"""The parameters of one training run: one pydantic model shared by Gallery, Studio and the trainer.

A Studio can train two kinds of generator network from image collections a person uploads:

- `cyclegan` (Zhu et al., arXiv 1703.10593): from a collection of photos and one of paintings, a
  network that repaints a photo (an image-to-image model);
- `dcgan` (Radford et al., arXiv 1511.06434): from one collection of images, a network that paints
  from a seed alone (a latent model).

Like `painting.params.Params`, every field has a default, a range and a one-line description, the
page builds its form from `TrainingParams.model_json_schema()` (`x-kinds` says which kinds read a
field), unknown fields are refused and values are taken strictly. A field given for a kind it does
not apply to is refused, naming it, and the stored or sent form (`model_dump`) carries only the
fields of its kind. Fields whose default depends on the kind are None until `resolved()`;
`to_engine()` is the plain dict the trainer takes.

This module imports pydantic only: no TensorFlow, so both services may use it.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from painting.params import describe_validation_error

Kind = Literal["cyclegan", "dcgan"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# The fields each kind reads (besides `kind` itself).
_COMMON = frozenset(
    {
        "steps",
        "batch_size",
        "image_size",
        "learning_rate",
        "beta1",
        "filters",
        "sample_every",
        "checkpoint_every",
        "seed",
        "name",
    }
)
KIND_FIELDS: dict[str, frozenset[str]] = {
    "cyclegan": _COMMON | {"cycle_weight", "identity_weight"},
    "dcgan": _COMMON | {"latent_dim"},
}

# The defaults that depend on the kind. CycleGAN trains on one image pair at a time at 256 px, as in
# the paper; DCGAN on batches of 64 small images, as in its paper (32 px: CIFAR's size).
DEFAULT_BATCH_SIZE: dict[str, int] = {"cyclegan": 1, "dcgan": 64}
DEFAULT_IMAGE_SIZE: dict[str, int] = {"cyclegan": 256, "dcgan": 32}

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 512
# CycleGAN's ResNet generator halves the image twice (two stride-2 convolutions) and doubles it back
# twice: a side that is not a multiple of 4 would come back a different size.
CYCLEGAN_SIZE_MULTIPLE = 4
# DCGAN's generator starts from a 4 × 4 map and doubles it per transposed convolution, its
# discriminator halves it back: only these sizes have the layer counts the trainer builds.
DCGAN_IMAGE_SIZES: tuple[int, ...] = (16, 32, 64)

# The fewest readable images a training run takes, per uploaded collection (a CycleGAN takes two,
# photos and paintings, each needing this many; a DCGAN one). The trainer holds one image out as
# the fixed photo its samples repaint (CycleGAN), so the same image shows how training goes from
# sample to sample, and must still have enough left to shuffle and batch; a DCGAN learns a whole
# distribution from its one collection and with fewer than 16 images only memorises them (16 is
# also one 4 × 4 grid of samples to compare with).
MIN_IMAGES: dict[str, int] = {"cyclegan": 4, "dcgan": 16}

# The keys of `to_engine()`, in order: what the trainer reads.
ENGINE_KEYS: tuple[str, ...] = (
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
)

# A trained model's name: what `Params.model` later names it by, so a subset of that field's pattern
# (a letter or digit first: a name is also a file name and a command-line argument).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


def collections_for(kind: str) -> tuple[str, ...]:
    """The image collections a run of `kind` is trained from, by name: the upload's part names."""
    if kind == "cyclegan":
        return ("photos", "paintings")
    if kind == "dcgan":
        return ("images",)
    raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")


def _mark_kinds(schema: dict[str, Any]) -> None:
    """Each property's `x-kinds`: the kinds that read it (the page shows a field only for those)."""
    for name, prop in schema.get("properties", {}).items():
        prop["x-kinds"] = list(KINDS) if name == "kind" else [k for k in KINDS if name in KIND_FIELDS[k]]


class TrainingParams(BaseModel):
    """How to train: the kind of network, the length of the run, its optimiser, loss weights and size."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=_mark_kinds)

    kind: Kind = Field(
        "cyclegan",
        description="What to train: cyclegan (repaints a photo; from photos and paintings) or dcgan "
        "(paints from a seed; from one collection of images).",
    )
    steps: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="Training steps (one batch each): more is slower and, up to a point, better.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=512,
        description="Images per step; when not given, the kind's own (cyclegan 1, dcgan 64).",
    )
    image_size: int | None = Field(
        None,
        ge=MIN_IMAGE_SIZE,
        le=MAX_IMAGE_SIZE,
        description="Side of the square images it trains on, in pixels; when not given, the kind's own "
        f"(cyclegan 256, a multiple of {CYCLEGAN_SIZE_MULTIPLE}; dcgan 32, one of "
        f"{', '.join(map(str, DCGAN_IMAGE_SIZES))}).",
    )
    learning_rate: float = Field(
        2e-4,
        ge=1e-6,
        le=1e-1,
        description="Adam's learning rate for both networks.",
    )
    beta1: float = Field(
        0.5,
        ge=0.0,
        le=0.999,
        description="Adam's beta1 (momentum): 0.5 keeps adversarial training steadier than the usual 0.9.",
    )
    cycle_weight: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description="How strongly a photo repainted and painted back must come back as it was (cyclegan).",
    )
    identity_weight: float | None = Field(
        None,
        ge=0.0,
        le=1000.0,
        description="How strongly a painting passed through the painter must stay as it is, which keeps "
        "colours (cyclegan); when not given, half of cycle_weight.",
    )
    latent_dim: int = Field(
        100,
        ge=2,
        le=1024,
        description="Length of the random seed vector the generator paints from (dcgan).",
    )
    filters: int = Field(
        64,
        ge=4,
        le=128,
        description="Width of the networks (filters of their first layer): smaller trains faster and paints coarser.",
    )
    sample_every: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Make a sample image every this many steps, to watch the training.",
    )
    checkpoint_every: int = Field(
        200,
        ge=1,
        le=1_000_000,
        description="Save the networks every this many steps, so a stopped run can resume.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**31 - 1,
        description="Random seed of the initial weights and of the order of the images.",
    )
    name: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="The trained model's name (lowercase letters, digits, _ and -); when not given, "
        "<kind>-<the first 8 characters of the training's id>.",
    )

    @model_validator(mode="after")
    def _fields_apply_to_kind(self) -> TrainingParams:
        applies = KIND_FIELDS[self.kind]
        stray = sorted(self.model_fields_set - applies - {"kind"})
        if stray:
            raise ValueError(
                "; ".join(f"{name}: does not apply to a {self.kind} training" for name in stray)
                + f" (it reads {', '.join(sorted(applies))})"
            )
        size = self.image_size
        if size is not None:
            if self.kind == "cyclegan" and size % CYCLEGAN_SIZE_MULTIPLE:
                raise ValueError(
                    f"image_size: a cyclegan trains on sizes that are a multiple of {CYCLEGAN_SIZE_MULTIPLE}; "
                    f"{size} is not (try {size - size % CYCLEGAN_SIZE_MULTIPLE})"
                )
            if self.kind == "dcgan" and size not in DCGAN_IMAGE_SIZES:
                raise ValueError(
                    f"image_size: a dcgan trains on {', '.join(map(str, DCGAN_IMAGE_SIZES))} px images, not {size}"
                )
        return self

    @model_serializer(mode="wrap")
    def _only_what_applies(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        applies = KIND_FIELDS[self.kind] | {"kind"}
        return {name: value for name, value in data.items() if name in applies}

    def model_name(self, training_id: str) -> str:
        """The trained model's name: `name` when given, else "<kind>-<first 8 of training_id>".

        Raises ValueError when that default is not a valid name (an id with other characters).
        """
        if self.name is not None:
            return self.name
        name = f"{self.kind}-{training_id[:8].lower()}"
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"name: {name!r} made from the training id is not a valid model name")
        return name

    def resolved(self, training_id: str | None = None) -> TrainingParams:
        """These params with every None that applies to the kind filled with the kind's default:
        batch_size, image_size, identity_weight (cyclegan: half of cycle_weight) and, when
        `training_id` is given, name. Fields the kind does not read are left as they are."""
        filled: dict[str, Any] = {}
        if self.batch_size is None:
            filled["batch_size"] = DEFAULT_BATCH_SIZE[self.kind]
        if self.image_size is None:
            filled["image_size"] = DEFAULT_IMAGE_SIZE[self.kind]
        if self.kind == "cyclegan" and self.identity_weight is None:
            filled["identity_weight"] = self.cycle_weight / 2
        if training_id is not None and self.name is None:
            filled["name"] = self.model_name(training_id)
        if not filled:
            return self
        # Validated again (not `model_copy`), so a resolved run passes the same rule as a sent one.
        return type(self).model_validate({**self.model_dump(exclude_unset=True), **filled})

    def to_engine(self) -> dict[str, int | float | None]:
        """The plain dict the trainer takes: ENGINE_KEYS, resolved for the kind; a key the kind does
        not read (cycle_weight and identity_weight for a dcgan, latent_dim for a cyclegan) is None."""
        resolved = self.resolved()
        applies = KIND_FIELDS[self.kind]
        return {key: (getattr(resolved, key) if key in applies else None) for key in ENGINE_KEYS}


def parse_training_params(data: str | bytes | dict[str, Any] | None) -> TrainingParams:
    """TrainingParams from a JSON text or a dict (None or empty: all defaults, a cyclegan).

    Raises ValueError with a message that names each bad field.
    """
    if data is None or data == "" or data == b"":
        return TrainingParams()
    try:
        if isinstance(data, str | bytes):
            return TrainingParams.model_validate_json(data)
        return TrainingParams.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def limited_training_schema(*, max_steps: int, max_image_size: int) -> dict[str, Any]:
    """TrainingParams' JSON schema with a deployment's own caps on steps and image size, so a form
    built from it never offers what that deployment refuses."""
    schema = TrainingParams.model_json_schema()
    properties = schema["properties"]
    properties["steps"]["maximum"] = min(properties["steps"]["maximum"], max_steps)
    properties["steps"]["default"] = min(properties["steps"]["default"], max_steps)
    size = next(p for p in properties["image_size"]["anyOf"] if p.get("type") == "integer")
    size["maximum"] = min(size["maximum"], max_image_size)
    return schema


__all__ = [
    "CYCLEGAN_SIZE_MULTIPLE",
    "DCGAN_IMAGE_SIZES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_IMAGE_SIZE",
    "ENGINE_KEYS",
    "KINDS",
    "KIND_FIELDS",
    "MAX_IMAGE_SIZE",
    "MIN_IMAGES",
    "MIN_IMAGE_SIZE",
    "NAME_PATTERN",
    "Kind",
    "TrainingParams",
    "collections_for",
    "limited_training_schema",
    "parse_training_params",
]
