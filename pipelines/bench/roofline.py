"""The roofline line of the report: a BERT forward's FLOPs against this CPU's assumed peak.

r = roofline(student_config, batch=1, seq=128, p50_ms=2.3, precision="int8")
r["fraction_of_peak"]    # achieved ÷ assumed peak
r = roofline(..., ceiling={"int8": 7.6e11})     # and achieved ÷ the measured GEMM ceiling
"""

from __future__ import annotations

from typing import Any

from modelkit.cpu import cpu_flags, cpu_ghz, cpu_vendor_family, usable_cores

# AMD Zen 4 (cpuid family 0x19 with AVX-512) runs each 512-bit instruction on two 256-bit pipes:
# one 512-bit FMA (or VPDPBUSD) per cycle per core where Intel's two-port server cores issue two
# (AMD's Zen 4 software optimization guide; measured here: 3.3 zmm VPDPBUSD per ns per core at
# ~3.3 GHz, and twice as many ymm ones). Zen 5 (family 0x1A) server cores are 512-bit wide again.
HALF_RATE_AVX512 = {("AuthenticAMD", 25)}


def flops_per_cycle(
    flags: set[str], precision: str = "fp32", vendor_family: tuple[str, int | None] = ("", None)
) -> tuple[int, str]:
    """Assumed peak ops per cycle per core, and the assumption in words."""
    if "avx512f" in flags and "fma" in flags and vendor_family in HALF_RATE_AVX512:
        fp32, why = 32, "AVX-512 on AMD Zen 4: 16 fp32 lanes × 2 (FMA) × 1 (two 256-bit halves)"
    elif "avx512f" in flags and "fma" in flags:
        fp32, why = 64, "AVX-512: 16 fp32 lanes × 2 (FMA) × 2 FMA ports"
    elif "avx2" in flags and "fma" in flags:
        fp32, why = 32, "AVX2: 8 fp32 lanes × 2 (FMA) × 2 FMA ports"
    else:
        fp32, why = 8, "SSE/NEON-class: 4 fp32 lanes × (mul + add)"
    if precision != "int8":
        return fp32, why
    if flags & {"avx512_vnni", "avx_vnni"}:
        return 4 * fp32, why + "; int8 VNNI (VPDPBUSD) = 4× fp32"
    return 2 * fp32, why + "; int8 without VNNI (VPMADDUBSW+VPMADDWD) ≈ 2× fp32"


# config.json keys of families that name the shape differently (DistilBERT: n_layers, dim,
# hidden_dim); a config object maps them itself, a config.json read as a dict does not.
CONFIG_ALIASES = {
    "num_hidden_layers": ("n_layers",),
    "hidden_size": ("dim",),
    "intermediate_size": ("hidden_dim",),
}


def bert_flops(config: Any, batch: int = 1, seq: int = 128) -> tuple[float, str]:
    """FLOPs of one BERT encoder forward and the formula; embeddings and classifier left out."""

    def get(key: str) -> int:
        for name in (key, *CONFIG_ALIASES.get(key, ())):
            value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
            if value is not None:
                return int(value)
        raise KeyError(f"model config has no {key} (nor {CONFIG_ALIASES.get(key, ())})")

    layers, hidden, inter = get("num_hidden_layers"), get("hidden_size"), get("intermediate_size")
    linear = layers * (4 * hidden * hidden + 2 * hidden * inter)
    flops = batch * (2 * linear * seq + 4 * layers * seq * seq * hidden)
    formula = (
        "batch·(2·P_lin·seq + 4·L·seq²·H), P_lin = L·(4·H² + 2·H·I) "
        f"= {batch}·(2·{linear}·{seq} + 4·{layers}·{seq}²·{hidden})"
    )
    return float(flops), formula


def roofline(
    model_config: Any,
    batch: int = 1,
    seq: int = 128,
    cpu: dict[str, Any] | None = None,
    p50_ms: float | None = None,
    precision: str = "fp32",
    ceiling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A BERT forward's FLOPs, the CPU's assumed peak, and (given p50_ms) the fraction achieved.

    cpu: {"cores", "ghz", "flags", "vendor", "family"} to override detection (cores: this
    process's affinity). ceiling: `pipelines.bench.ceiling`'s measurement, {precision: ops/s}.
    """
    cpu = dict(cpu or {})
    flops, formula = bert_flops(model_config, batch, seq)
    flags = set(cpu.get("flags") or cpu.get("isa") or cpu_flags())
    cores = int(cpu.get("cores") or usable_cores())
    if cpu.get("ghz"):
        ghz, ghz_source = float(cpu["ghz"]), "given"
    else:
        ghz, ghz_source = cpu_ghz()
    if "vendor" in cpu or "family" in cpu:
        vendor_family = (str(cpu.get("vendor") or ""), cpu.get("family"))
    else:
        vendor_family = cpu_vendor_family()
    per_cycle, why = flops_per_cycle(flags, precision, vendor_family)
    peak = cores * ghz * 1e9 * per_cycle
    out = {
        "batch": batch,
        "seq": seq,
        "precision": precision,
        "flops": flops,
        "formula": formula,
        "peak_ops_per_s": peak,
        "assumption": (
            f"{cores} cores × {ghz:.2f} GHz ({ghz_source}) × {per_cycle} ops/cycle ({why}); "
            "no AMX, no memory limits; a core boosting above that clock can beat it"
        ),
        "p50_ms": p50_ms,
        "achieved_ops_per_s": None,
        "fraction_of_peak": None,
        "ceiling_ops_per_s": (ceiling or {}).get(precision),
        "fraction_of_ceiling": None,
    }
    if p50_ms:
        achieved = flops / (p50_ms / 1000.0)
        out.update(achieved_ops_per_s=achieved, fraction_of_peak=achieved / peak)
        if out["ceiling_ops_per_s"]:
            out["fraction_of_ceiling"] = achieved / out["ceiling_ops_per_s"]
    return out
