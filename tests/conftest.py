"""Test configuration: the Triton kernels run under Triton's interpreter on CPU.

``TRITON_INTERPRET=1`` must be set before the kernels are first imported, so it is set here, at
collection time. With it set, vsm's "auto" dispatch sends CPU tensors through the Triton kernels;
tests that exercise higher-level code and do not need the kernels can use the ``reference_backend``
fixture to run the pure-torch path quickly.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
import vsm
from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def reference_backend():
    """Run vsm's fused ops through the pure-torch reference inside the test."""
    with vsm.backend("reference"):
        yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
