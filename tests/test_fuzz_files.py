"""Fuzzed files: seeded random damage to every file format skkgp reads.

Each written format (DEAP ``.dat`` and ``.mat``, SEED ``.mat`` as MATLAB v5 and v7.3,
``DREAMER.mat``, and model files of :func:`skkgp.save`) is damaged in many seeded ways
(bytes flipped in the headers or anywhere, length fields overwritten, truncation,
inserted bytes) and loaded in a separate worker process. Every load must end in a
well-formed result or in a ``ValueError``/``OSError`` whose message names the file:
no other exception, no crash of the interpreter (the worker would die) and no hang
(each load has a time limit). The counts per format are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

import skkgp
from skkgp import EEGClassifier
from skkgp.datasets import write_dreamer_like, write_deap_like, write_seed_like

#: Loads per format; 1,050 in all.
N_LOADS = {"deap_dat": 200, "deap_mat": 175, "seed_v5": 150, "seed_v73": 150,
           "dreamer": 175, "model": 200}
#: Seconds one load may take before it counts as a hang (ordinary loads take well
#: under a second even on a busy 2-core machine).
TIME_LIMIT = 30.0

# The worker reads "format<TAB>path" lines and answers one JSON line per load.
WORKER = r'''
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
import skkgp
from skkgp.datasets import load_deap, load_dreamer, load_seed

def check_bunch(data):
    X = data.X
    assert isinstance(X, np.ndarray) and X.dtype == np.float32 and X.ndim == 3
    assert np.isfinite(X).all()
    assert len(X) == len(data.y) == len(data.groups) == len(data.trials) > 0
    assert X.shape[1] == len(data.ch_names)

LOADERS = {
    "deap_dat": lambda p: check_bunch(load_deap(p, format="python")),
    "deap_mat": lambda p: check_bunch(load_deap(p, format="matlab")),
    "seed_v5": lambda p: check_bunch(load_seed(p)),
    "seed_v73": lambda p: check_bunch(load_seed(p)),
    "dreamer": lambda p: check_bunch(load_dreamer(p)),
    "model": lambda p: getattr(skkgp.load(p), "predict"),
}
print("ready", flush=True)
for line in sys.stdin:
    fmt, path, name = line.rstrip("\n").split("\t")
    try:
        LOADERS[fmt](path)
        answer = {"outcome": "loaded"}
    except (ValueError, OSError) as error:
        named = name in str(error)
        answer = {"outcome": "named error" if named else "unnamed error",
                  "type": type(error).__name__, "message": str(error)[:300]}
    except BaseException as error:
        answer = {"outcome": "other exception", "type": type(error).__name__,
                  "message": str(error)[:300]}
    print(json.dumps(answer), flush=True)
'''


class Worker:
    """A Python process that loads files; restarted after a crash or a hang."""

    def __init__(self):
        self.process = None
        self.start()

    def start(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env=env)
        line = self.process.stdout.readline()
        assert line.strip() == "ready", "the fuzz worker did not start"

    def load(self, fmt: str, path: str, name: str) -> dict:
        self.process.stdin.write(f"{fmt}\t{path}\t{name}\n")
        self.process.stdin.flush()
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout=TIME_LIMIT)
        selector.close()
        if not ready:
            self.stop()
            self.start()
            return {"outcome": "hang"}
        line = self.process.stdout.readline()
        if not line:  # the interpreter died
            code = self.process.wait()
            self.start()
            return {"outcome": "crash", "message": f"exit status {code}"}
        return json.loads(line)

    def stop(self):
        self.process.kill()
        self.process.wait()


def _mutate(original: bytes, rng: np.random.Generator) -> bytes:
    """One seeded damage: flipped bytes, an overwritten length field, cut or inserted bytes."""
    data = bytearray(original)
    head = min(len(data), 4096)
    kind = rng.integers(6)
    if kind in (0, 1):  # flip a few bytes in the header region (tags, names, sizes)
        for offset in rng.integers(0, head, size=rng.integers(1, 9)):
            data[offset] ^= int(rng.integers(1, 256))
    elif kind == 2:  # flip bytes anywhere
        for offset in rng.integers(0, len(data), size=rng.integers(1, 17)):
            data[offset] ^= int(rng.integers(1, 256))
    elif kind == 3:  # a length or dimension field becomes huge, zero or negative
        offset = int(rng.integers(0, max(head - 4, 1)))
        data[offset:offset + 4] = rng.choice(
            [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x40"])
    elif kind == 4:  # truncated download
        data = data[: int(rng.integers(0, len(data)))]
    else:  # inserted garbage
        offset = int(rng.integers(0, len(data)))
        data[offset:offset] = rng.bytes(int(rng.integers(1, 64)))
    return bytes(data)


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """format -> (path given to the loader, file that gets damaged, its pristine bytes)."""
    root = tmp_path_factory.mktemp("fuzz")
    out = {}
    deap = write_deap_like(root / "deap", n_subjects=1, n_trials=2, duration=1.0,
                           format="both", random_state=0)
    out["deap_dat"] = (deap, deap / "data_preprocessed_python" / "s01.dat")
    out["deap_mat"] = (deap, deap / "data_preprocessed_matlab" / "s01.mat")
    for fmt in ("v5", "v7.3"):
        seed = write_seed_like(root / f"seed-{fmt}", n_subjects=1, n_sessions=1,
                               features="raw", clip_seconds=2.0, format=fmt, random_state=0)
        out[f"seed_{fmt.replace('.', '')}"] = (seed, next((seed / "Preprocessed_EEG").glob(
            "1_*.mat")))
    dreamer = write_dreamer_like(root / "dreamer", n_subjects=1, n_clips=3, clip_seconds=2.0,
                                 baseline_seconds=2.0, random_state=0)
    out["dreamer"] = (dreamer, dreamer)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4, 64)).astype(np.float32)
    net = EEGClassifier("eegnet", max_epochs=1, batch_size=8, random_state=0)
    net.fit(X, np.tile([0, 1], 8))
    model = root / "model.skkgp"
    skkgp.save(net, model)
    out["model"] = (model, model)
    return {fmt: (str(path), victim, victim.read_bytes()) for fmt, (path, victim) in out.items()}


def test_damaged_files_load_or_fail_cleanly_naming_the_file(targets):
    worker = Worker()
    counts: dict[str, Counter] = {fmt: Counter() for fmt in N_LOADS}
    failures = []
    started = time.perf_counter()
    try:
        for fmt, n_loads in N_LOADS.items():
            path, victim, pristine = targets[fmt]
            rng = np.random.default_rng([17, len(fmt)])
            for index in range(n_loads):
                victim.write_bytes(_mutate(pristine, rng))
                answer = worker.load(fmt, path, victim.name)
                counts[fmt][answer["outcome"]] += 1
                if answer["outcome"] not in ("loaded", "named error"):
                    failures.append((fmt, index, answer))
            victim.write_bytes(pristine)
    finally:
        worker.stop()
    elapsed = time.perf_counter() - started
    print(f"\nfuzzed loads in {elapsed:.1f} s:")
    for fmt, counter in counts.items():
        print(f"  {fmt:<9} {sum(counter.values()):>4} loads: " + ", ".join(
            f"{outcome} {count}" for outcome, count in sorted(counter.items())))
    assert sum(sum(c.values()) for c in counts.values()) >= 1000
    assert not failures, failures[:5]
    # The damage reached the parsers: every format saw errors, not only altered samples.
    assert all(counter["named error"] > 0 for counter in counts.values())
