"""The machine a figure was measured on: CPU model and the instruction-set flags that change OpenVINO's
kernels (a speed figure means something only next to them)."""
from __future__ import annotations

import os
import platform

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info() -> dict:
    """CPU model, cores and the ISA flags that decide OpenVINO's kernels (written next to every figure)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in FLAGS if f in flags]}


def describe() -> str:
    info = cpu_info()
    return f"{info['model']}, {info['cores']} cores, {'/'.join(info['flags']) or 'no AVX2'}"
