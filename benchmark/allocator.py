"""glibc's allocator set to keep freed memory for reuse while a network trains on the CPU.

By default glibc serves blocks from 128 KiB up (raised as such blocks are freed, to at most 32 MiB) with
mmap and returns them with munmap, and trims the heap's free top: every training step then takes its
activations' memory from the kernel again, one page fault per 4 KiB page, and blocks of 32 MiB and more
(Laine's four rotated copies of a batch, wide 3-D activations) always. Measured here (2 threads; README,
"Noise2Same's step"): Noise2Same at 32 channels, batch 16 of 64x64, 15,000 to 28,000 faults a step;
Laine's network at 32 channels, 860,000 faults a step and 1.48x the time of a step with none. With this
setting a training process keeps up to its peak memory (plus 15 to 20% of fragmentation measured on
Laine's), which is what it needs again at the next step. It is for training only: kept on, it made the
bench's tiled 3-D inference peak at 2,572 MB against 736 MB without it, so when training ends
`stop_keeping_freed_memory` hands the free pages back and lets the largest blocks be mapped again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from typing import Iterator

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4

NEVER_TRIM = -1  # mallopt(M_TRIM_THRESHOLD, -1): the heap's top is never trimmed by free() (mallopt(3))
# Where glibc's own setting settles once large blocks have been freed (malloc.c: each freed mapped block
# raises the mmap threshold to its size, at most 32 MiB, and the trim threshold to twice that). Set
# explicitly, glibc no longer moves them, so its starting values (128 KiB) would map every block of 128
# KiB and more afresh: 205,000 faults per 512x512 image, at half the speed of the settled values here.
AFTER_TRAINING = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}


def _libc() -> ctypes.CDLL | None:
    """The C library if it is glibc (it has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Tell glibc malloc to serve every block from its heap (M_MMAP_MAX 0: no block gets a mapping of its
    own) and never to trim the heap's free top on free() (M_TRIM_THRESHOLD -1), so the next training step
    reuses the pages the last one freed. Process-wide and lasting; True where it applied, False where the C
    library is not glibc."""
    libc = _libc()
    return libc is not None and bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def release_freed_memory() -> bool:
    """Hand every free page of glibc's heap back to the system (malloc_trim(0), which also releases free
    pages inside the heap, not only at its top): at the end of a training run, and before a peak is
    measured. True where glibc released something."""
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))


def stop_keeping_freed_memory() -> bool:
    """Hand the free pages back (`release_freed_memory`) and let blocks of 32 MiB and more have their own
    mapping again, returned when freed, with the heap trimmed beyond 64 MiB free (where glibc's defaults
    settle), so that what runs after training (scoring, tiled inference of large volumes) does not keep
    its largest blocks."""
    libc = _libc()
    if libc is None:
        return False
    release_freed_memory()
    return all(libc.mallopt(parameter, value) for parameter, value in AFTER_TRAINING.items())


@contextmanager
def freed_memory_kept(enabled: bool = True) -> Iterator[bool]:
    """`keep_freed_memory` for the block (when `enabled`), `stop_keeping_freed_memory` after it; yields
    whether the setting applied."""
    applied = enabled and keep_freed_memory()
    try:
        yield applied
    finally:
        if applied:
            stop_keeping_freed_memory()
