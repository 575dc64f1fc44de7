"""Measure a student: parameters, GMACs (fvcore, strict), latency and peak memory.

For example:

    from radio_nas.measure import profile
    profile("t", resolution=(224, 224))["gmacs"]
"""

from radio_nas.measure.flops import count_gmacs, count_params
from radio_nas.measure.latency import (
    LatencyResult,
    cached_latency,
    cpu_model,
    device_name,
    latency_cache_path,
    measure_latency,
)
from radio_nas.measure.profile import parse_resolution, profile

__all__ = [
    "LatencyResult",
    "cached_latency",
    "count_gmacs",
    "count_params",
    "cpu_model",
    "device_name",
    "latency_cache_path",
    "measure_latency",
    "parse_resolution",
    "profile",
]
