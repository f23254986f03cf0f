"""The output folder of ``skkgp reproduce`` as a resumable store of finished results.

Layout::

    OUT/config.json                         what the results in OUT were computed with
    OUT/cells/MODEL-METHOD-RECOVERY-seedS-foldK.json   one finished (cell, seed, fold)
    OUT/results.csv, OUT/table.md, OUT/comparison.csv, OUT/accuracy.png,
    OUT/pareto.png, OUT/evidence-CELL.png        written from cells/ at the end
    OUT/run.log                             one line per run

Each (cell, fold) file is written to a temporary name and moved into place with
``os.replace``, which is atomic: a run killed at any instant (even ``kill -9``)
leaves either the whole file or none of it, so a resumed run trusts every file it
finds and recomputes only what is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from skkgp._atomic import atomic_write_text
from skkgp.reproduce.config import (
    ALL_MODELS,
    ALL_RECOVERIES,
    METHOD_CHOICES,
    Cell,
    ConfigError,
    ReproduceConfig,
)

__all__ = ["ResultStore", "OUTPUT_FILES", "evidence_plot_name"]

#: What a run writes in OUT from cells/ at its end, besides one evidence plot per cell
#: (:func:`evidence_plot_name`). ``--overwrite`` deletes these and nothing else.
OUTPUT_FILES = ("results.csv", "table.md", "comparison.csv", "accuracy.png", "pareto.png")

_EVIDENCE_PLOT = re.compile(
    rf"evidence-({'|'.join(ALL_MODELS)})-({'|'.join(METHOD_CHOICES)})"
    rf"-({'|'.join(ALL_RECOVERIES)})(-r[0-9.e+-]+)?\.png"
)


def evidence_plot_name(cell: Cell) -> str:
    """File name of the evidence plot of ``cell`` in OUT."""
    return f"evidence-{cell.key}.png"

# 2: one origin per (model, origin family, fold); results gained origin_train_accuracy
# and origin_seconds and lost origins_identical.
# 3: results per seed (the seed left the configuration and joined the file names);
# results gained seed (the run's) and random_state (the origin's, formerly seed).
_FORMAT = 3


class ResultStore:
    """Finished (cell, seed, fold) results of one configuration in one folder.

    Parameters
    ----------
    out : path-like
        The output folder (created when missing).
    """

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.cells_dir = self.out / "cells"

    # -- configuration --------------------------------------------------------------
    def open(self, config: ReproduceConfig, *, overwrite: bool = False) -> None:
        """Claim the folder for ``config``, or refuse when it holds another run's results.

        Raises
        ------
        ConfigError
            When ``out`` holds results of a different configuration and ``overwrite``
            is false, or when ``out`` is a file.
        """
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {str(self.out)!r} is a file, not a folder.")
        config_path = self.out / "config.json"
        wanted = {"format": _FORMAT, "config": config.identity()}
        if config_path.exists():
            try:
                found = json.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                found = {"unreadable": str(error)}
            if found != wanted:
                if not overwrite:
                    raise ConfigError(self._mismatch_message(found, wanted))
                self._clear()
        elif self.out.is_dir() and any(self.out.iterdir()) and not overwrite:
            raise ConfigError(
                f"--out {str(self.out)!r} is not empty and holds no skkgp config.json; "
                "refusing to write into it. Choose a new --out folder, or pass --overwrite "
                "to write there anyway."
            )
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        if not config_path.exists():
            atomic_write_text(config_path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")

    def _mismatch_message(self, found: dict, wanted: dict) -> str:
        found_config = found.get("config", {}) if isinstance(found, dict) else {}
        differences = [
            f"  {name}: {found_config.get(name, '<missing>')!r} there, {value!r} now"
            for name, value in wanted["config"].items()
            if found_config.get(name, "<missing>") != value
        ]
        extra = sorted(set(found_config) - set(wanted["config"]))
        differences += [f"  {name}: {found_config[name]!r} there, <unset> now" for name in extra]
        if not differences:
            differences = ["  (the file format differs)"]
        return (
            f"--out {str(self.out)!r} holds results of a different configuration:\n"
            + "\n".join(differences)
            + "\nResults there are kept. Choose a new --out folder, rerun with the same "
            "options to resume, or pass --overwrite to delete them and start again."
        )

    def _clear(self) -> None:
        # Only what skkgp itself writes is removed; anything else the user put there
        # stays, their own figures included.
        shutil.rmtree(self.cells_dir, ignore_errors=True)
        for name in ("config.json", *OUTPUT_FILES):
            (self.out / name).unlink(missing_ok=True)
        for png in self.out.glob("evidence-*.png"):
            if _EVIDENCE_PLOT.fullmatch(png.name):
                png.unlink()

    # -- results --------------------------------------------------------------------
    def path(self, cell: Cell, seed: int, fold: int) -> Path:
        return self.cells_dir / f"{cell.key}-seed{seed}-fold{fold}.json"

    def has(self, cell: Cell, seed: int, fold: int) -> bool:
        return self.path(cell, seed, fold).exists()

    def save(self, cell: Cell, seed: int, fold: int, result: dict[str, Any]) -> None:
        """Store one finished (cell, seed, fold) at once, atomically."""
        atomic_write_text(self.path(cell, seed, fold), json.dumps(result, sort_keys=True) + "\n")

    def load(self, cell: Cell, seed: int, fold: int) -> dict[str, Any]:
        return json.loads(self.path(cell, seed, fold).read_text(encoding="utf-8"))
