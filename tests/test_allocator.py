"""The allocator setting of CPU training: freed activations are reused, not taken from the kernel again,
and handed back when training ends."""

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
    out = net(x)
    # and one block of 64 MiB, as Laine's four rotated copies of a wide batch: above glibc's largest mmap threshold
    wide = out.repeat(1, 2 ** 21 // out[0].numel(), 1, 1)
    wide.square().mean().backward()
for _ in range(6):  # warm-up: the heap grows to what a step needs
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

RESIDENT_AFTER_RELEASE = """
import torch
from benchmark.allocator import keep_freed_memory, release_freed_memory
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
keep_freed_memory()
base = resident()
block = torch.ones(2 ** 26)  # 256 MiB, written
del block
kept = resident() - base
released = release_freed_memory()
print(kept >> 20, released, (resident() - base) >> 20)
"""


FAULTS_OF_A_LARGE_BLOCK_BEFORE_DURING_AFTER_TRAINING = """
import resource
import pytorch_lightning as pl
import torch
from benchmark.cell import KeepFreedMemoryOnCpu
def faults_of_large_blocks():
    torch.ones(2 ** 24).sum()  # 64 MiB, once to warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        torch.ones(2 ** 24).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
class Probe(pl.Callback):
    def on_train_end(self, trainer, module):
        self.during = faults_of_large_blocks()
class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
    def training_step(self, batch, index):
        return self.layer(batch).square().mean()
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)
probe = Probe()
before = faults_of_large_blocks()
pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
           enable_model_summary=False, callbacks=[KeepFreedMemoryOnCpu(), probe]).fit(
    Tiny(), train_dataloaders=torch.utils.data.DataLoader(torch.randn(4, 2), batch_size=2))
print(before, probe.during, faults_of_large_blocks())
"""


def run(snippet: str, *args: str) -> list[str]:
    return subprocess.run([sys.executable, "-c", snippet, *args], capture_output=True, text=True,
                          check=True).stdout.split()


def faults(mode: str) -> tuple[str, int]:
    """(whether the setting applied, minor page faults of three training steps after six) in a new process."""
    applied, count = run(FAULTS_OF_TRAINING_STEPS, mode)
    return applied, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_training_steps_reuse_freed_memory_instead_of_faulting_it_in_again():
    applied, kept = faults("keep")
    _, default = faults("default")
    assert applied == "True"
    # By default the 64 MiB block alone is mapped afresh every step (16,384 faults each, so 49,152 in
    # three steps) and the smaller activations are too; kept, the heap serves the steps once it has grown
    # to a step's need (0 to 512 here).
    assert default > 3 * 16_384
    assert kept < 1_000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_is_kept_until_released():
    kept_mb, released, after_mb = run(RESIDENT_AFTER_RELEASE)
    assert int(kept_mb) >= 250  # a freed 256 MiB block stays resident for the next step ...
    assert released == "True" and int(after_mb) < 16  # ... until training ends and hands it back


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_runner_keeps_freed_memory_while_it_trains_and_not_after():
    before, during, after = map(int, run(FAULTS_OF_A_LARGE_BLOCK_BEFORE_DURING_AFTER_TRAINING))
    # A 64 MiB block is mapped afresh each time outside training (16,384 faults each, three times), and
    # reused from the heap while the callback's fit runs; after it, glibc's defaults are back for scoring.
    assert before >= 3 * 16_000 and after >= 3 * 16_000
    assert during < 1_000
