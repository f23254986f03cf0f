"""How fast load_deap reads a full DEAP-sized release, and how learnable the simulator is.

1. Writes 32 simulated subjects in the exact DEAP format with ``write_deap_like``
   (3.3 GB per release format) unless they are already there, then times
   ``load_deap`` on them in a fresh subprocess and reports its wall time and peak
   resident memory (``ru_maxrss``), for the Python and the MATLAB release, and the
   time of band DE + grid mapping over all windows.
2. Scores band differential entropy + logistic regression on ``make_deap_like``
   (default size) with trial-grouped 5-fold CV, mean +- std over 3 seeds.

Run::

    python benchmarks/load_deap_speed.py --directory /tmp/deap_sim --format both
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from skkgp.datasets import make_deap_like, write_deap_like

_LOAD_SNIPPET = """
import json, resource, sys, time
from skkgp.datasets import load_deap
start = time.perf_counter()
data = load_deap(sys.argv[1], format=sys.argv[2])
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
result = {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
          "n_windows": len(data.X), "shape": list(data.X.shape),
          "x_gb": data.X.nbytes / 1e9, "peak_rss_gb": usage.ru_maxrss / 1e6}
if sys.argv[3] == "1":
    from skkgp.transforms import BandDifferentialEntropy, ToGrid
    start, cpu = time.perf_counter(), time.process_time()
    grid = ToGrid().fit_transform(BandDifferentialEntropy().fit_transform(data.X))
    result["features_seconds"] = time.perf_counter() - start
    result["features_cpu_seconds"] = time.process_time() - cpu
print(json.dumps(result))
"""


def ensure_release(directory: Path, n_subjects: int, kind: str) -> float:
    """Write the simulated release unless complete; return the seconds spent writing."""
    folder = directory / f"data_preprocessed_{kind}"
    suffix = ".dat" if kind == "python" else ".mat"
    if all((folder / f"s{k:02d}{suffix}").is_file() for k in range(1, n_subjects + 1)):
        return 0.0
    start = time.perf_counter()
    write_deap_like(directory, n_subjects=n_subjects, random_state=0, format=kind,
                    overwrite=True, verbose=True)
    return time.perf_counter() - start


def time_load(directory: Path, kind: str, features: bool = False) -> dict:
    """Load in a fresh interpreter so the peak memory is the loader's alone."""
    out = subprocess.run([sys.executable, "-c", _LOAD_SNIPPET, str(directory), kind,
                          "1" if features else "0"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def simulator_accuracy(seeds=(0, 1, 2)) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_score
    from sklearn.pipeline import FunctionTransformer, make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skkgp.transforms import BandDifferentialEntropy

    scores = []
    for seed in seeds:
        data = make_deap_like(random_state=seed)
        features = BandDifferentialEntropy().fit_transform(data.X)
        pipe = make_pipeline(FunctionTransformer(lambda F: F.reshape(len(F), -1)),
                             StandardScaler(), LogisticRegression(max_iter=1000))
        scores.append(cross_val_score(pipe, features, data.y, groups=data.trials,
                                      cv=GroupKFold(n_splits=5)).mean())
    return float(np.mean(scores)), float(np.std(scores))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, default=Path("/tmp/skkgp_deap_sim"))
    parser.add_argument("--subjects", type=int, default=32)
    parser.add_argument("--format", choices=("python", "matlab", "both"), default="both")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args(argv)

    kinds = ["python", "matlab"] if args.format == "both" else [args.format]
    for index, kind in enumerate(kinds):
        written = ensure_release(args.directory, args.subjects, kind)
        size = sum(p.stat().st_size for p in
                   (args.directory / f"data_preprocessed_{kind}").glob("s*.*")) / 1e9
        result = time_load(args.directory, kind, features=index == 0)
        print(f"{kind:>6}: {args.subjects} subjects, {size:.2f} GB on disk "
              f"(written in {written:.0f} s)" if written else
              f"{kind:>6}: {args.subjects} subjects, {size:.2f} GB on disk")
        print(f"        load_deap {result['seconds']:.1f} s wall, "
              f"{result['cpu_seconds']:.1f} s CPU "
              f"(import included) -> X {tuple(result['shape'])} "
              f"float32 ({result['x_gb']:.2f} GB), peak RSS {result['peak_rss_gb']:.2f} GB")
        if "features_seconds" in result:
            print(f"        BandDifferentialEntropy + ToGrid on all windows: "
                  f"{result['features_seconds']:.1f} s wall, "
                  f"{result['features_cpu_seconds']:.1f} s CPU")
    if not args.skip_accuracy:
        mean, std = simulator_accuracy()
        print(f"make_deap_like (defaults) DE + logistic regression, trial-grouped 5-fold CV: "
              f"{mean:.3f} +- {std:.3f} over 3 seeds")


if __name__ == "__main__":
    main()
