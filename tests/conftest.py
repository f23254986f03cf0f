"""Shared fixtures. The CI machine has 2 cores: keep torch on one thread per worker."""

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
