import os

import pytest
import torch

# Tests share 2 cores with whatever else runs; one intra-op thread per process is the fastest there.
torch.set_num_threads(int(os.environ.get("CNNLAB_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
