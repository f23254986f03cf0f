"""Shared fixtures. The CI machine has 2 cores: keep torch on one thread per worker."""

import subprocess
import sys

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def run_without_cuda():
    """Run a Python script in a fresh interpreter that sees no GPU (a CPU-only machine).

    Called as ``run_without_cuda(script, *args)``; returns the finished process.
    """

    def run(script: str, *args) -> subprocess.CompletedProcess:
        env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "", "PYTHONPATH": ":".join(sys.path)}
        return subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                              capture_output=True, text=True)

    return run
