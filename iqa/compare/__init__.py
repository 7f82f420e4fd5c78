"""Comparing methods: per-method summaries with bootstrap intervals, paired statistics
against a baseline, and the files that record them.

Modules:
    :mod:`~iqa.compare.stats`: the numbers (bootstrap intervals, paired differences, the
        Wilcoxon signed-rank test, Holm's adjustment, wins/ties/losses by the metric's direction).
    :mod:`~iqa.compare.run`: methods → score files → :class:`Comparison` → ``summary.json``
        and ``summary.csv``.
    :mod:`~iqa.compare.report`: ``iqa report``, the static HTML page of a comparison (reading
        with :mod:`~iqa.compare.report_data`, plots in :mod:`~iqa.compare.report_figures`,
        previews and heat maps in :mod:`~iqa.compare.report_gallery`, page in ``report_assets/``).
"""
