"""radio-nas: declarative architecture search and ablation for E-RADIO students (AM-RADIO).

    import radio_nas
    model = radio_nas.build_model("t")
    radio_nas.profile("t", resolution=224)       # params, GMACs, latency

Heavy submodules are imported on first use so that ``radio-nas --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from radio_nas._config import ConfigError

_LAZY = {
    "build_model": "radio_nas.models",
    "resolve_config": "radio_nas.models",
    "ERadioConfig": "radio_nas.models",
    "profile": "radio_nas.measure",
    "count_gmacs": "radio_nas.measure",
    "measure_latency": "radio_nas.measure",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'radio_nas' has no attribute {name!r}")


__all__ = ["ConfigError", "__version__", *_LAZY]
