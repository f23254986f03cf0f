"""How fast load_seed reads a SEED-sized release, next to load_deap.

Writes, unless already there, a simulated SEED release with the release's structure
(15 subjects x 3 sessions = 45 files of 15 clips, 62 channels at 200 Hz; raw EEG in
``Preprocessed_EEG`` and DE features in ``ExtractedFeatures``) with ``write_seed_like``,
and a simulated DEAP release with ``write_deap_like``. Then times, each in a fresh
interpreter (so that the peak resident memory is the loader's alone), ``load_seed`` on
the raw and the DE release and ``load_deap`` on the Python release, and reports the
loader's wall time, the process's CPU time (interpreter start and imports included),
its peak memory and the rate in MB of file read per wall second.

The real SEED films last about 4 minutes (16 GB of raw files); ``--clip-seconds``
sets the simulated length so that the release fits the disk (the default, 20 s, makes
1.3 GB of raw files). The DE files have the real number of windows per second.

Run::

    python benchmarks/load_seed_speed.py --directory /tmp/seed_bench
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from skkgp.datasets import write_deap_like, write_seed_like

_LOAD_SNIPPET = """
import json, resource, sys, time
from skkgp.datasets import load_deap, load_seed
start = time.perf_counter()
if sys.argv[1] == "deap":
    data = load_deap(sys.argv[2], format="python")
else:
    data = load_seed(sys.argv[2], features=sys.argv[1])
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "shape": list(data.X.shape), "x_gb": data.X.nbytes / 1e9,
                  "peak_rss_gb": usage.ru_maxrss / 1e6}))
"""


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.mat")) + sum(
        p.stat().st_size for p in folder.rglob("*.dat"))


def time_load(kind: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _LOAD_SNIPPET, kind, str(path)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, required=True)
    parser.add_argument("--clip-seconds", type=float, default=20.0)
    parser.add_argument("--deap-subjects", type=int, default=8)
    args = parser.parse_args(argv)
    seed_root, deap_root = args.directory / "seed", args.directory / "deap"
    if not (seed_root / "Preprocessed_EEG").is_dir():
        start = time.perf_counter()
        write_seed_like(seed_root, n_subjects=15, n_sessions=3, clip_seconds=args.clip_seconds,
                        random_state=0)
        print(f"wrote the SEED-sized release in {time.perf_counter() - start:.0f} s")
    if not (deap_root / "data_preprocessed_python").is_dir():
        start = time.perf_counter()
        write_deap_like(deap_root, n_subjects=args.deap_subjects, random_state=0)
        print(f"wrote {args.deap_subjects} DEAP subjects in {time.perf_counter() - start:.0f} s")
    rows = [
        ("load_seed raw", "raw", seed_root, seed_root / "Preprocessed_EEG"),
        ("load_seed de", "de", seed_root, seed_root / "ExtractedFeatures"),
        ("load_deap python", "deap", deap_root, deap_root / "data_preprocessed_python"),
    ]
    print(f"{'loader':<18} {'files MB':>9} {'X shape':>20} {'wall s':>7} {'proc cpu s':>10} "
          f"{'MB/s':>7} {'peak RSS GB':>12}")
    for name, kind, path, folder in rows:
        size = folder_bytes(folder) / 1e6
        result = time_load(kind, path)
        print(f"{name:<18} {size:>9.0f} {str(tuple(result['shape'])):>20} "
              f"{result['seconds']:>7.2f} {result['cpu_seconds']:>10.2f} "
              f"{size / result['seconds']:>7.0f} {result['peak_rss_gb']:>12.2f}")


if __name__ == "__main__":
    main()
