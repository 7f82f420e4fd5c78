"""The machine line every benchmark prints beside its ratios: a speed figure holds only on
the machine it was measured on (CPU model, ISA extensions, cores, torch and BLAS builds)."""

from __future__ import annotations

import os
import platform


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
