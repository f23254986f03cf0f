"""``skkgp reproduce``: the paper's Table 1 as one resumable command.

- :mod:`~skkgp.reproduce.config`: options, presets (quick default, ``--full``), the grid;
- :mod:`~skkgp.reproduce.data`: windows, each model's inputs, folds per protocol;
- :mod:`~skkgp.reproduce.runner`: one origin and the cells pruning it, run here or on Dask;
- :mod:`~skkgp.reproduce.store`: the output folder as a resumable, atomic store;
- :mod:`~skkgp.reproduce.report`: per-fold results, summary, paired test, table;
- :mod:`~skkgp.reproduce.plots`: evidence topomaps and accuracy bars;
- :mod:`~skkgp.reproduce.command`: the whole run;
- :mod:`~skkgp.reproduce.parallel`, :mod:`~skkgp.reproduce.worker`: ``--workers N``.
"""

from __future__ import annotations

from typing import Any

from skkgp.reproduce.config import Cell, ConfigError, ReproduceConfig

__all__ = ["reproduce", "Outcome", "ReproduceConfig", "Cell", "ConfigError"]


# The command imports torch: resolved on first use, so that a worker process (which
# imports this package before its body, see skkgp.reproduce.worker) starts quickly.
def __getattr__(name: str) -> Any:
    if name in ("reproduce", "Outcome"):
        from skkgp.reproduce import command

        return getattr(command, name)
    raise AttributeError(f"module 'skkgp.reproduce' has no attribute {name!r}")
