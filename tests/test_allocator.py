"""The allocator setting of CPU training: freed activations are reused, not taken from the kernel again."""

import subprocess
import sys

import pytest

FAULTS_OF_TRAINING_STEPS = """
import resource, sys
import torch
from benchmark.allocator import keep_freed_memory
from methods.unet import UNet, UNetConfig
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.set_num_threads(1)
torch.manual_seed(0)
net = UNet(1, 1, 2, UNetConfig(depth=2, base_channels=16))
x = torch.randn(8, 1, 64, 64)
def step():
    net(x).square().mean().backward()
for _ in range(6):  # warm-up: the heap grows to what a step needs
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    """(whether the setting applied, minor page faults of three training steps after six) in a new process."""
    out = subprocess.run([sys.executable, "-c", FAULTS_OF_TRAINING_STEPS, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    applied, kept = faults("keep")
    _, default = faults("default")
    assert applied == "True"
    # By default the steps' larger activations are mapped afresh every step (here about 20,000 faults
    # in three steps); kept, the heap serves the steps once it has grown to a step's need (0 to 512 here).
    assert default > 5_000
    assert kept < default / 10
