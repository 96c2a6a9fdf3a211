"""When inference runs in bf16: on a CUDA GPU that has it, or on a CPU with bf16 matrix
instructions (Intel AMX, or AVX512-BF16 on Intel and AMD), and never elsewhere.

On a CPU without them, bf16 is emulated in fp32 and converted back and forth: slower
than fp32 and less exact, so such a CPU always runs fp32. `IMDB_SENTIMENT_CPU_BF16=0` in the
environment keeps a CPU that has them in fp32 too (to compare runs bit for bit).
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

# /proc/cpuinfo flags of the instructions that do bf16 matrix work in hardware.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
CPUINFO = Path("/proc/cpuinfo")
CPU_BF16_ENV = "IMDB_SENTIMENT_CPU_BF16"


def cpuinfo_flags(cpuinfo: Path | None = None) -> set[str]:
    """The flags of the first processor in /proc/cpuinfo (empty where there is none)."""
    try:
        text = (cpuinfo or CPUINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU does bf16 matrix work in hardware: asked of torch (which checks
    the instruction sets itself, on any OS), else read from /proc/cpuinfo."""
    import torch

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in checks:
        check = getattr(torch.cpu, name, None)
        if check is not None and check():
            return True
    return bool(cpuinfo_flags() & BF16_CPU_FLAGS)


def uses_bf16(device: Any, bf16: bool) -> bool:
    """Whether to autocast to bf16 on `device`: asked for, and the device has it."""
    if not bf16:
        return False
    if device.type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    cpu_bf16_off = os.environ.get(CPU_BF16_ENV) == "0"
    return device.type == "cpu" and not cpu_bf16_off and cpu_supports_bf16()


def bf16_autocast(device: Any, bf16: bool) -> AbstractContextManager[Any]:
    """`torch.autocast` to bf16 on `device` when :func:`uses_bf16` says so, else nothing."""
    if not uses_bf16(device, bf16):
        return nullcontext()
    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
