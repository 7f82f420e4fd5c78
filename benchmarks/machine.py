"""What every benchmark shares: the machine line it prints beside its ratios (a speed figure
holds only on the machine it was measured on: CPU model, ISA extensions, cores, torch and BLAS
builds), the interleaved rounds that time its sides, and the "median (min–max)" it prints.

Every script reports alike: the machine line, the peer's settings, each side's median and
spread (min–max) over the rounds, and the ratio of the medians, peer / iqa (> 1: iqa faster).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Callable


def machine_line() -> str:
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = ",".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if f in flags) or "no AVX2"
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    parts = [model, isa, f"{cpus} CPUs", f"Python {platform.python_version()}"]
    try:
        import torch

        import re

        blas = ",".join(re.findall(r"BLAS_INFO=(\w+)", torch.__config__.show())) or "?"
        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads, BLAS {blas})")
    except ImportError:
        pass
    import numpy as np

    parts.append(f"numpy {np.__version__}")
    parts.append(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
    try:  # what the BLAS and OpenMP pools loaded in this process say of themselves
        from threadpoolctl import threadpool_info

        pools = [f"{p['internal_api']} {p.get('version') or ''} {p.get('architecture') or ''} "
                 f"{p['num_threads']}t".replace("  ", " ") for p in threadpool_info()]
        parts.append("threadpoolctl: " + ", ".join(pools))
    except ImportError:
        parts.append("threadpoolctl: not installed")
    return "machine: " + "; ".join(parts)


def interleaved(
    sides: dict[str, Callable[[], Any]], rounds: int, *, target: float | None = None, warmup: bool = True
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds per call of each side in each of ``rounds`` rounds, and each side's last result.

    Every round runs every side in turn, in the order of ``sides`` and reversed every other
    round, so that a drift in the machine's load hits all sides alike. Before the rounds each
    side runs once untimed when ``warmup`` is true (thread pools, allocator, caches, the page
    cache, weights digests: what any run after the first finds ready); with ``warmup=False``
    the first round pays those costs and its time stays among the samples. With ``target``
    (seconds; implies the warm-up) a round repeats a fast side as many times as fill about
    ``target`` (counted from one timed call after the warm-up; one call for a slow side) and
    records the time per call; else each side runs once a round.

    Example: ``times, outs = interleaved({"iqa": ours, "peer": theirs}, 5)``, then
    ``median(times["peer"]) / median(times["iqa"])`` and ``spread(times["iqa"])``.
    """
    outs: dict[str, Any] = {}
    calls = dict.fromkeys(sides, 1)
    for name, fn in sides.items():
        if warmup or target is not None:
            outs[name] = fn()
        if target is not None:
            t0 = time.perf_counter()
            outs[name] = fn()
            calls[name] = max(1, min(2000, int(target / max(time.perf_counter() - t0, 1e-7))))
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, n = sides[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                outs[name] = fn()
            times[name].append((time.perf_counter() - t0) / n)
    return times, outs


def spread(samples: list[float], scale: float = 1e3, unit: str = "ms", fmt: str = ".3g") -> str:
    """``median unit (min–max)`` of ``samples`` (seconds) times ``scale``: "12.3 ms (11.9–13.0)"."""
    med, lo, hi = (format(v * scale, fmt) for v in (statistics.median(samples), min(samples), max(samples)))
    return f"{med}{' ' + unit if unit else ''} ({lo}–{hi})"


def median(samples: list[float]) -> float:
    """The median of ``samples``: what every ratio divides."""
    return statistics.median(samples)
