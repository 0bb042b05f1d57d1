"""Sweeps: a base scenario crossed with axes of settings, each cell an isolated run, one report."""
