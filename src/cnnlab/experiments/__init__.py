"""Experiments: everything that trains or evaluates several networks (comparisons, sweeps, landscapes, claims)."""
