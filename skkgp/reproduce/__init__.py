"""``skkgp reproduce``: the paper's Table 1 as one resumable command.

- :mod:`~skkgp.reproduce.config`: options, presets (quick default, ``--full``), the grid;
- :mod:`~skkgp.reproduce.data`: windows, each model's inputs, folds per protocol;
- :mod:`~skkgp.reproduce.runner`: one origin and the cells pruning it, run here or on Dask;
- :mod:`~skkgp.reproduce.store`: the output folder as a resumable, atomic store;
- :mod:`~skkgp.reproduce.report`: per-fold results, summary, paired test, table;
- :mod:`~skkgp.reproduce.plots`: evidence topomaps and accuracy bars;
- :mod:`~skkgp.reproduce.command`: the whole run.
"""

from skkgp.reproduce.command import Outcome, reproduce
from skkgp.reproduce.config import Cell, ConfigError, ReproduceConfig

__all__ = ["reproduce", "Outcome", "ReproduceConfig", "Cell", "ConfigError"]
