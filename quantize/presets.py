"""Quantization presets named after the hardware that runs the int8 model.

One registry (`PRESETS`), one function per target with a one-line docstring saying why, as
optimum-onnx's `AutoQuantizationConfig` does. Where we differ from optimum 2.1 the function says so:

| preset        | act / weight | reduce_range | per_channel | optimum 2.1 chooses              |
|---------------|--------------|--------------|-------------|----------------------------------|
| `avx512_vnni` | u8 / s8      | False        | True        | same                             |
| `avx512`      | u8 / s8      | **True**     | True        | reduce_range=False (a parameter) |
| `avx2`        | u8 / s8      | **True**     | True        | u8 / **u8**, reduce_range=False  |
| `arm64`       | u8 / s8      | False        | True        | same                             |
| `tensorrt`    | **s8** / s8  | False        | True        | (no TensorRT preset)             |

Why 7-bit weights without VNNI: ONNX Runtime runs u8×s8 GEMMs with VPMADDUBSW on AVX2 and
AVX-512 without VNNI; it adds pairs of u8·s8 products into a saturating int16, so large
activations times large weights clip: BERT int8 models that are right on VNNI machines go wrong
on AVX2/AVX-512 ones (onnxruntime issues #5849, #6004, #14642). `reduce_range` quantizes weights
to 7 bits, which keeps each pair sum within int16. (The other fix, the session option
`session.x64quantprecision` from onnxruntime PR #12088, widens to int16 at a large speed cost
and belongs to whoever runs the model, not to the quantizer.) ORT 1.32's own
`quantize_static` docstring gives the same advice ("x86/x64 CPU without VNNI: QUInt8 / QInt8,
reduce_range=True"). VNNI (VPDPBUSD) accumulates straight into int32, so full 8-bit range is safe.

`tensorrt` is for the GPU: TensorRT reads a QDQ graph as explicit quantization and accepts only
signed int8 with zero-point 0, so activations are s8 and symmetric (the benchmark sends such a
static QDQ model to the TensorRT EP; a u8 one it skips, saying why). ONNX Runtime's CPU EP still
runs it, which is how the quantize stage's accuracy gate checks it.

This module imports nothing heavy: pipelines validate recipes against it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass

from modelkit.errors import InputError

INT8_TYPES = ("int8", "uint8")


@dataclass(frozen=True)
class QuantPreset:
    """How to quantize for one target: integer types, 7-bit weights or not, per-channel or not.

    `activation_type` applies to static (QDQ) quantization; dynamic quantization always uses
    uint8 activations, the only type ONNX Runtime's DynamicQuantizeLinear produces.
    """

    name: str
    reduce_range: bool  # True: 7-bit weights, for CPUs whose int8 GEMM can saturate (no VNNI)
    weight_type: str  # "int8" or "uint8"
    activation_type: str  # "uint8" or "int8" (static only)
    per_channel: bool  # one scale per output channel: more accurate, slightly larger/slower
    why: str  # one line: why these settings suit the target

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("QuantPreset.name must be a non-empty string")
        for key in ("weight_type", "activation_type"):
            value = getattr(self, key)
            if value not in INT8_TYPES:
                raise ValueError(
                    f"QuantPreset.{key} must be one of {list(INT8_TYPES)}, got {value!r}"
                )
        if self.activation_type == "int8" and self.weight_type == "uint8":
            # Same rule as optimum's ensure_valid_data_type_or_raise: ORT has no s8×u8 kernel.
            raise ValueError(
                "QuantPreset: int8 activations with uint8 weights is not supported by ONNX Runtime; "
                "use weight_type='int8' (s8s8) or activation_type='uint8' (u8u8)"
            )
        for key in ("reduce_range", "per_channel"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"QuantPreset.{key} must be a bool, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        """Plain dict for JSON (every artifact carries the preset that made it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> QuantPreset:
        """Inverse of `to_dict`; unknown keys raise so typos do not pass silently."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown QuantPreset keys {unknown}; expected {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)


# Each preset spells out every setting, though several agree (a repeat `duplicates` reports on
# purpose): a target's int8 settings read in one place, with the reason beside them (STYLE 6).


def avx512_vnni() -> QuantPreset:
    """VNNI (VPDPBUSD) accumulates u8·s8 straight into int32: full 8-bit range, no saturation."""
    return QuantPreset(
        name="avx512_vnni",
        reduce_range=False,
        weight_type="int8",
        activation_type="uint8",
        per_channel=True,
        why=avx512_vnni.__doc__,
    )


def avx512() -> QuantPreset:
    """AVX-512 without VNNI sums u8·s8 pairs in saturating int16 (VPMADDUBSW): 7-bit weights."""
    # optimum's avx512() defaults reduce_range=False and leaves it to the caller; we turn it on,
    # as ORT 1.32's quantize_static docstring and optimum's own parameter doc advise for non-VNNI.
    return QuantPreset(
        name="avx512",
        reduce_range=True,
        weight_type="int8",
        activation_type="uint8",
        per_channel=True,
        why=avx512.__doc__,
    )


def avx2() -> QuantPreset:
    """AVX2 has no VNNI: u8·s8 pairs saturate in int16 (VPMADDUBSW), so 7-bit weights."""
    # optimum's avx2() picks u8 weights instead (u8u8 widens to int16 before multiplying, so it
    # cannot saturate) but that kernel does half the work per instruction; ORT 1.32 recommends
    # u8s8 + reduce_range for non-VNNI x86, which keeps the fast kernel. Same settings as avx512().
    return QuantPreset(
        name="avx2",
        reduce_range=True,
        weight_type="int8",
        activation_type="uint8",
        per_channel=True,
        why=avx2.__doc__,
    )


def arm64() -> QuantPreset:
    """ARM64 kernels accumulate int8 products in int32 (no saturation): full range, u8s8 like optimum."""
    # optimum: "u8/s8 is faster (than u8/u8) on lower-end ARM64 and identical on higher-end".
    return QuantPreset(
        name="arm64",
        reduce_range=False,
        weight_type="int8",
        activation_type="uint8",
        per_channel=True,
        why=arm64.__doc__,
    )


def tensorrt() -> QuantPreset:
    """TensorRT's explicit (QDQ) int8 takes signed int8 with zero-point 0 only: s8 symmetric activations."""
    return QuantPreset(
        name="tensorrt",
        reduce_range=False,
        weight_type="int8",
        activation_type="int8",
        per_channel=True,
        why=tensorrt.__doc__,
    )


PRESETS: dict[str, Callable[[], QuantPreset]] = {
    "avx512_vnni": avx512_vnni,
    "avx512": avx512,
    "avx2": avx2,
    "arm64": arm64,
    "tensorrt": tensorrt,
}

# Static calibration: how activation ranges are read off the calibration rows (name → the
# onnxruntime.quantization.CalibrationMethod member quantize.ort_static passes on).
CALIBRATION_METHODS: dict[str, str] = {
    "minmax": "MinMax",  # running min/max: cheapest, sensitive to outliers
    "percentile": "Percentile",  # clip at the 99.999th percentile histogram bin
    "entropy": "Entropy",  # KL-optimal clipping threshold (TensorRT's method)
}

AUTO = "auto"  # preset name that means: pick from this machine's CPU flags (select_preset)

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})  # /proc/cpuinfo names (AVX-512 and AVX VNNI)
ARM_ARCHES = frozenset({"aarch64", "arm64", "armv8", "armv8l"})


def get_preset(name: str) -> QuantPreset:
    """The preset registered under `name`; an unknown name lists the known ones."""
    try:
        factory = PRESETS[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown quantization preset {name!r}; choose one of {sorted(PRESETS)} "
            f"or {AUTO!r} to pick from this CPU"
        ) from None
    return factory()


def select_preset(flags: set[str] | frozenset[str], arch: str) -> tuple[QuantPreset, str]:
    """Pick the preset for a CPU from its feature flags and architecture; returns (preset, reason).

    `flags` are /proc/cpuinfo names (`avx512_vnni`, `avx_vnni`, `avx512f`, `avx2`, ...);
    `arch` is `platform.machine()` (`x86_64`, `aarch64`, `arm64`).
    """
    flags = {f.lower() for f in flags}
    arch = (arch or "").lower()
    if arch in ARM_ARCHES:
        return arm64(), f"arch {arch}: ARM64 int8 dot products accumulate in int32"
    vnni = sorted(flags & VNNI_FLAGS)
    if vnni:
        return avx512_vnni(), f"{'+'.join(vnni)}: VNNI accumulates in int32, no saturation"
    if "avx512f" in flags:
        return avx512(), "avx512f without VNNI: int16 accumulation can saturate, 7-bit weights"
    if "avx2" in flags:
        return avx2(), "avx2 without VNNI: int16 accumulation can saturate, 7-bit weights"
    # No known SIMD flag (old x86, other arch, or flags unreadable): 7-bit weights are safe on
    # every ORT kernel and cost at most one bit of weight precision, so take the avx2 settings.
    return avx2(), (
        f"no VNNI/AVX-512/AVX2 flag found (arch {arch or 'unknown'}): falling back to the "
        "conservative 'avx2' settings (reduce_range=True); name a preset to override"
    )


def detect_cpu() -> tuple[set[str], str]:
    """This machine's CPU flags (py-cpuinfo, /proc/cpuinfo spelling) and `platform.machine()`."""
    from modelkit.cpu import cpu_flags

    return cpu_flags(), platform.machine()


def resolve_preset(name: str) -> tuple[QuantPreset, str]:
    """`get_preset(name)`, or for `"auto"` the preset `select_preset` picks for this machine."""
    if name == AUTO:
        return select_preset(*detect_cpu())
    return get_preset(name), f"preset {name!r} named explicitly"
