"""Typed cell records for tests that fill a store by hand."""

from __future__ import annotations

from typing import Any

from benchmark.store import DoneRecord, FailedRecord, TestScores, Timings

PROVENANCE = {"table": "table3", "preset": "smoke", "dataset": "hanzi", "method": "noise2same", "seed": 0,
              "config": {}, "finished": "2026-01-01T00:00:00.000+00:00", "versions": {"torch": "2.13.0"},
              "python": "3.11", "host": "test", "device": "cpu"}


def done_record(cell_id: str, psnr: dict[str, float] | None = None, ssim: dict[str, float] | None = None,
                **fields: Any) -> DoneRecord:
    """A finished record of `cell_id` whose one test set scored `psnr` (image id -> dB) and `ssim` (None: a
    record from before SSIM was kept)."""
    psnr = psnr or {"0": 20.0, "1": 22.0}
    ssim_mean = sum(ssim.values()) / len(ssim) if ssim else None
    tests = {"test": TestScores(psnr_mean=sum(psnr.values()) / len(psnr), psnr=psnr, ssim_mean=ssim_mean, ssim=ssim)}
    return DoneRecord(**{**PROVENANCE, "id": cell_id, "tests": tests, "started": PROVENANCE["finished"],
                         "timings": Timings(train_s=1.0, test_s=1.0, total_s=2.0), **fields})


def failed_record(cell_id: str, error: str = "FloatingPointError: nan", **fields: Any) -> FailedRecord:
    """A failed record of `cell_id` with the one-line reason `error`."""
    return FailedRecord(**{**PROVENANCE, "id": cell_id, "error": error, "traceback": error, **fields})
