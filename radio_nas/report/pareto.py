"""Pareto ranks and hypervolume: they live in :mod:`radio_nas.study.pareto` (below the sweep and
the report, which both use them); re-exported here for the report's API."""

from radio_nas.study.pareto import (
    REFERENCE_MARGIN,
    HypervolumeResult,
    dominates,
    hypervolume,
    normalised_hypervolume,
    pareto_mask,
    pareto_ranks,
    to_minimisation,
)

__all__ = [
    "REFERENCE_MARGIN",
    "HypervolumeResult",
    "dominates",
    "hypervolume",
    "normalised_hypervolume",
    "pareto_mask",
    "pareto_ranks",
    "to_minimisation",
]
