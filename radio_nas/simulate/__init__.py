"""Sweeps simulated against exhaustive tables, and the tables themselves (``radio-nas replay``).

* :mod:`~radio_nas.simulate.table`: the exhaustive table of a finite space (from a study, or its CSV);
* :mod:`~radio_nas.simulate.simulate`: real Optuna samplers answered from a table, with the sweep's
  own decisions (:mod:`radio_nas.search.decisions`);
* :mod:`~radio_nas.simulate.summary`: medians and IQRs over the repeats, tables and the plot;
* :mod:`~radio_nas.simulate.exhaustive`: the grid sweep that builds a table.

It reads the sweep's rules from :mod:`radio_nas.search`; nothing in ``search`` imports it.
"""

from radio_nas.simulate.simulate import Run, replay, simulate, warm_start_replay
from radio_nas.simulate.summary import TARGET_RATIO, format_replay, format_warm_start, plot_replay, summarise
from radio_nas.simulate.table import (
    CurvePoint,
    Row,
    Table,
    load_table,
    missing_points,
    read_csv,
    space_from_raw,
    table_from_study,
    write_table,
)

__all__ = [
    "TARGET_RATIO",
    "CurvePoint",
    "Row",
    "Run",
    "Table",
    "format_replay",
    "format_warm_start",
    "load_table",
    "missing_points",
    "plot_replay",
    "read_csv",
    "replay",
    "simulate",
    "space_from_raw",
    "summarise",
    "table_from_study",
    "warm_start_replay",
    "write_table",
]
