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


@pytest.fixture
def weights_layout():
    """``weights_layout(module)``: the memory layout of a network's 4-D weights.

    ``"channels_last"`` or ``"contiguous"``, judged on the weights whose two layouts
    have different strides (1x1 and depthwise kernels can be both); fails the test when
    those weights disagree.
    """

    def layout(module) -> str:
        formats = set()
        for p in module.parameters():
            if p.dim() != 4:
                continue
            last = torch.empty(p.shape, memory_format=torch.channels_last, device="meta")
            first = torch.empty(p.shape, device="meta")
            if last.stride() != first.stride():
                formats.add("channels_last" if p.stride() == last.stride() else
                            "contiguous" if p.stride() == first.stride() else "other")
        assert len(formats) == 1, formats
        return formats.pop()

    return layout


@pytest.fixture
def load_benchmark():
    """A script of ``benchmarks/`` as a module: ``load_benchmark("train_speed")``."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
        return bench

    return load
