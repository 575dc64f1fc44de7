"""Published reference numbers (other models) shown beside a sweep's results, marked "reference".

    from radio_nas.report.reference import load_reference, BUNDLED_REFERENCE
    rows = load_reference(BUNDLED_REFERENCE)        # or your own YAML
    rows.frame()                                    # pandas, one row per model

YAML format (see ``reference_rows.yaml`` bundled here)::

    note: where the numbers come from
    rows:
      - name: E-RADIO-L (v2)
        source: NVlabs/RADIO README
        params_m: 391
        resolution: 512
        gmacs: 179.8
        metrics: {imagenet_zero_shot: 80.73, knn: 83.89, ade20k: 48.22}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from radio_nas._config import Config, ConfigError, load_yaml

BUNDLED_REFERENCE = Path(__file__).with_name("reference_rows.yaml")


@dataclasses.dataclass(frozen=True)
class ReferenceRow(Config):
    name: str
    source: str = ""
    params_m: float | None = None
    resolution: int | None = None
    gmacs: float | None = None
    gmacs_note: str = ""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ReferenceTable(Config):
    rows: tuple[ReferenceRow, ...] = ()
    note: str = ""

    def validate(self) -> None:
        if not self.rows:
            raise ConfigError("expected at least one row", key="rows")

    def frame(self) -> pd.DataFrame:
        records = []
        for row in self.rows:
            record = {
                "name": row.name,
                "kind": "reference",
                "params_m": row.params_m,
                "resolution": row.resolution,
                "gmacs": row.gmacs,
            }
            record.update(row.metrics)
            record["source"] = row.source + (f" ({row.gmacs_note})" if row.gmacs_note else "")
            records.append(record)
        return pd.DataFrame(records)


def load_reference(path: str | Path) -> ReferenceTable:
    """Validated reference rows from YAML; errors name the file and key."""
    data = load_yaml(path)
    try:
        return ReferenceTable.from_dict(data)
    except ConfigError as exc:
        raise exc.within(file=path) from None
