"""Statistics on feature arrays: they take features, never folders.

:mod:`iqa.distribution.statistics`: the mergeable float64 accumulator (n, Σx, Σxxᵀ) and
its ``.npz`` files. :mod:`iqa.distribution.frechet`: the Fréchet distance.
:mod:`iqa.distribution.kid`: the kernel (MMD) distance over subsets.
:mod:`iqa.distribution.prdc`: precision, recall, density and coverage.
"""
