"""What a run hands to its plotter process, and what that process runs.

The process is started with the run (``report.start_plotter``) so that importing matplotlib overlaps the
matching; it is given plain arrays, not the DataFrame, so that it imports neither pandas nor the report
module: on a laptop whose cores the matcher keeps busy, every second the plotter spends importing is
taken from the matcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Columns:
    """A run's per-sample errors as arrays; reads like the DataFrame they come from (len, in, [])."""

    arrays: dict[str, np.ndarray]
    rows: int

    @classmethod
    def of(cls, df, columns) -> Columns:
        return cls({c: df[c].to_numpy(dtype=float) for c in columns if c in df}, len(df))

    def __len__(self) -> int:
        return self.rows

    def __contains__(self, column: str) -> bool:
        return column in self.arrays

    def __getitem__(self, column: str) -> np.ndarray:
        return self.arrays[column]


def warm_up() -> None:
    """The plotter's start: import what drawing needs while the run works."""
    from . import plots  # noqa: F401


def draw(*args) -> list[Path]:
    from . import plots

    return plots.run_plots(*args)
