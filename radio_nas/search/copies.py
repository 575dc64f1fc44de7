"""Which variant is which in a sweep: the variant each running trial trains, the trained trial of
each variant, and the proposals waiting for an identical variant still training (the searcher's
copy bookkeeping: :mod:`radio_nas.search.searcher` describes the rules).

A variant is :func:`radio_nas.search.space.variant_key`: the model as built at the pipeline's
resolution and the pipeline, so ``window_sizes: auto`` and the windows it resolves to are one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from radio_nas._config import ConfigError
from radio_nas.search.space import recorded_pipeline_id, variant_key
from radio_nas.study.record import Status, TrialRecord

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial

    from radio_nas.distill.pipeline import PipelineConfig
    from radio_nas.models import ArchConfig

Key = tuple[str, str]
"""A variant: (model id as built, pipeline id)."""


class Variants:
    """The copy bookkeeping of one searcher (see the module docstring)."""

    def __init__(self, study: Study):
        self._study = study
        self._keys: dict[str, Key] = {}  # tune trial id -> the variant it trains
        self._known: dict[Key, Key] = {}  # (arch id, pipeline id) of a record -> its variant
        self._waiting: dict[Key, list[tuple[Trial, ArchConfig]]] = {}  # copies of a running original

    def started(self, trial_id: str, key: Key) -> None:
        self._keys[trial_id] = key

    def ended(self, trial_id: str) -> Key | None:
        return self._keys.pop(trial_id, None)

    def running(self, key: Key, live: dict[str, Trial]) -> int | None:
        """The number of the live trial training the variant `key`, if any."""
        for trial_id, k in self._keys.items():
            if k == key and trial_id in live:
                return live[trial_id].number
        return None

    def wait(self, key: Key, trial: Trial, arch_cfg: ArchConfig) -> None:
        """`trial` (with its own architecture) takes the outcome of the running original of `key`."""
        self._waiting.setdefault(key, []).append((trial, arch_cfg))

    def take_waiting(self, key: Key) -> list[tuple[Trial, ArchConfig]]:
        """The copies waiting for `key`'s original, which ended (they are no longer waiting)."""
        return self._waiting.pop(key, [])

    def drop_waiting(self) -> list[Trial]:
        """Every copy still waiting (the sweep stopped before their originals ended)."""
        out = [t for waiting in self._waiting.values() for t, _ in waiting]
        self._waiting.clear()
        return out

    def trained(self, pipeline: PipelineConfig) -> dict[Key, FrozenTrial]:
        """Variant at `pipeline` -> the COMPLETE trial of that pipeline that trained it (not a copy)."""
        from radio_nas.models import resolve_config

        out: dict[Key, FrozenTrial] = {}
        for t in self._study.get_trials(deepcopy=False):
            r = TrialRecord.from_trial(t)
            if not (r.state == "COMPLETE" and r.status is Status.OK and r.duplicate_of is None and r.arch_id):
                continue
            if not r.pipeline or recorded_pipeline_id(r.pipeline) != pipeline.id:
                continue
            own = (r.arch_id, pipeline.id)
            if own not in self._known:  # a record this code cannot rebuild keeps its own arch id
                try:
                    self._known[own] = (
                        variant_key(cast("ArchConfig", resolve_config(dict(r.arch))), pipeline) if r.arch else own
                    )
                except ConfigError:
                    self._known[own] = own
            out.setdefault(self._known[own], t)
        return out
