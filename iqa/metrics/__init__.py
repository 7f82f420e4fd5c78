"""Metric modules: one module a metric; each imports io/color/weights, never another metric."""
