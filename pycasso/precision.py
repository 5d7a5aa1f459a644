"""Which arithmetic the exact engine's network runs in: `fp32`, `bf16`, or `auto` (chosen here).

`bf16` is mixed precision (`pycasso.vgg`): the convolutions in bfloat16, the losses, the optimiser
and the pixels in float32. It pays only on a chip with bf16 units, and it is worth it only if it
reaches a given quality sooner; bench/engine.py measures that (the wall time to reach the loss the
float32 run has after N iterations, scored in float32). On this project's CPU (AVX512-BF16, no AMX)
an iteration took 0.83× as long at 256 px and the loss after 50 and 100 iterations was the same
within 2 %, so bf16 reached every checked quality sooner: `auto` picks it wherever the chip has
bf16 units, and float32 elsewhere.

On a GPU, `fp32` also turns TensorFloat-32 off (TensorFlow's default on Ampere and later rounds
float32 matmuls and convolutions to a 10-bit mantissa): fp32 then means fp32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SETTINGS = ("auto", "fp32", "bf16")
_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bf16 arithmetic units (from /proc/cpuinfo's flags; False where unknown)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool(_CPU_BF16_FLAGS & set(line.split(":", 1)[-1].split()))
    return False


def gpu_has_bf16(tf: Any) -> bool:
    """Whether the first GPU has bf16 tensor cores (compute capability 8.0, Ampere, or later)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return tuple(capability) >= (8, 0)


def resolve(setting: str, tf: Any) -> tuple[str, str]:
    """(precision, why) for a setting on this machine; `tf` is the imported TensorFlow."""
    if setting not in SETTINGS:
        raise ValueError(f"precision must be one of {', '.join(SETTINGS)}, got {setting!r}")
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    if setting != "auto":
        return setting, "set"
    if on_gpu:
        if gpu_has_bf16(tf):
            return "bf16", "auto: the GPU has bf16 tensor cores"
        return "fp32", "auto: no bf16 on this GPU"
    if cpu_has_bf16():
        return "bf16", "auto: the CPU has bf16 units (AVX512-BF16/AMX)"
    return "fp32", "auto: the CPU has no bf16 units"


def apply(precision: str, tf: Any) -> None:
    """Process-wide settings that go with a precision (before the first GPU op)."""
    if precision == "fp32" and tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_tensor_float_32_execution(False)


__all__ = ["SETTINGS", "apply", "cpu_has_bf16", "gpu_has_bf16", "resolve"]
