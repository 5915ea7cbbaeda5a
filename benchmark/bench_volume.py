"""Large volumes through `denoise`, measured (`make bench-volume`): a random float32 volume in an .npy
file is denoised by `benchmark.denoise.denoise_file` with a randomly initialised network of the given
backbone (the paper's by default: depth 3, 96 channels, batch norm), and compared with the network's
own throughput on one window of the same size.

Figures: voxels per second of the whole volume (input read memory-mapped, output written) against one
window's voxels per second through `denoise_standardized` (their ratio is what tiling and its overlap
cost), and the process's peak resident memory during `denoise` (Linux VmHWM, reset just before) above
what it held before (the model), against the volume's size in bytes. Written to
<results>/bench_volume.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.console import whole_numbers
from benchmark.denoise import denoise_file, full_tile
from methods import METHODS
from methods.tiling import tile_count
from methods.unet import UNetConfig


@dataclass(frozen=True)
class VolumeBenchConfig:
    """The volume (Z, Y, X), the denoise windows of the last axes, the overlap (None: the receptive
    radius), the method and its backbone."""

    shape: tuple[int, int, int] = (96, 1024, 1024)
    tile: tuple[int | None, ...] = (256, 256)
    overlap: int | None = None
    method: str = "noise2same"
    backbone: UNetConfig = field(default_factory=UNetConfig.paper)

    @classmethod
    def quick(cls) -> "VolumeBenchConfig":
        """Seconds: a small volume and network (for tests)."""
        return cls(shape=(8, 96, 80), tile=(64, 64), backbone=UNetConfig(depth=2, base_channels=4))


def resident_kib(field_name: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status (Linux only)")


def reset_peak() -> None:
    """Reset VmHWM to the current resident size (Linux >= 4.0: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def write_volume(path: Path, shape: tuple[int, ...], seed: int = 0) -> None:
    """A random float32 volume in an .npy file, written slice by slice (never whole in memory)."""
    volume = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(seed)
    for z in range(shape[0]):
        volume[z] = rng.normal(100.0, 10.0, shape[1:]).astype(np.float32)
    volume.flush()
    del volume


@torch.no_grad()
def window_rate(method: Any, window: tuple[int, ...], repeats: int = 1) -> float:
    """Voxels per second of `denoise_standardized` on one (1, 1, *window) input (after one warm-up)."""
    z = torch.randn(1, 1, *window, generator=torch.Generator().manual_seed(0)).to(method.device)
    std = torch.ones(1, 1, *[1] * len(window), device=method.device)
    method.denoise_standardized(z, None, std=std).cpu()
    started = time.perf_counter()
    for _ in range(repeats):
        method.denoise_standardized(z, None, std=std).cpu()  # .cpu(): waits for a GPU to finish
    return repeats * math.prod(window) / (time.perf_counter() - started)


def measure(config: VolumeBenchConfig, folder: Path, device: str = "cpu") -> dict[str, Any]:
    """Denoise a random volume of config.shape from `folder` on `device` and return the figures (see the module)."""
    method = METHODS.get(config.method)(in_channels=1, spatial_dims=3, backbone=config.backbone).eval().to(device)
    source, target = folder / "volume.npy", folder / "denoised.npy"
    write_volume(source, config.shape)
    tile = full_tile(config.tile, 3)
    window = tuple(min(size, t or size) for size, t in zip(config.shape, tile))
    per_window = window_rate(method, window)
    margin = method.receptive_margin if config.overlap is None else config.overlap
    before = resident_kib("VmRSS")
    reset_peak()
    started = time.perf_counter()
    denoise_file(method, source, target, "ZYX", config.tile, config.overlap)
    seconds = time.perf_counter() - started
    peak = resident_kib("VmHWM")
    voxels = math.prod(config.shape)
    volume_bytes = voxels * 4
    rate = voxels / seconds
    return {"config": {**asdict(config), "threads": torch.get_num_threads(), "device": str(method.device)}, "voxels": voxels,
            "volume_mib": volume_bytes / 2**20, "windows": tile_count(config.shape, tile, margin, method.size_multiple),
            "window": list(window), "overlap": margin, "seconds": seconds, "voxels_per_s": rate,
            "window_voxels_per_s": per_window, "throughput_ratio": rate / per_window,
            "rss_before_mib": before / 1024, "peak_rss_mib": peak / 1024,
            "peak_above_before_mib": (peak - before) / 1024, "peak_ratio": (peak - before) * 1024 / volume_bytes,
            "output_equal_shape": np.load(target, mmap_mode="r").shape == config.shape}


def markdown(result: dict[str, Any]) -> str:
    """The figures as a short Markdown table."""
    c = result["config"]
    rows = [("volume", f"{' x '.join(map(str, c['shape']))} float32 ({result['volume_mib']:.1f} MiB)"),
            ("network", f"{c['method']}, depth {c['backbone']['depth']}, {c['backbone']['base_channels']} channels, "
                        f"batch norm {c['backbone']['batch_norm']}; {c['device']}, {c['threads']} threads"),
            ("windows", f"{result['windows']} of up to {' x '.join(map(str, result['window']))}, "
                        f"overlap {result['overlap']}"),
            ("denoise", f"{result['seconds']:.1f} s, {result['voxels_per_s']:,.0f} voxels/s"),
            ("one window", f"{result['window_voxels_per_s']:,.0f} voxels/s"),
            ("throughput ratio (target >= 0.8)", f"{result['throughput_ratio']:.2f}"),
            ("peak memory above the model's", f"{result['peak_above_before_mib']:.0f} MiB = "
                                              f"{result['peak_ratio']:.2f} x the volume (target <= 3)")]
    return "\n".join(["| measure | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench_volume", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small volume and network (seconds)")
    parser.add_argument("--shape", type=whole_numbers("volume sizes", "96,1024,1024"),
                        help="Z,Y,X of the volume (default 96,1024,1024)")
    parser.add_argument("--tile", type=whole_numbers("window sizes", "256,256"),
                        help="window of the last axes, e.g. 256,256 or 32,256,256")
    parser.add_argument("--overlap", type=int, help="overlap (default: the receptive radius, exact)")
    parser.add_argument("--backbone", type=whole_numbers("DEPTH,CHANNELS", "3,16"),
                        help="DEPTH,CHANNELS of a U-Net with batch norm instead of the paper's (3,96), e.g. 1,1 to see "
                             "the memory that scales with the volume")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available; on a 2-core CPU the default volume takes hours)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="folder for bench_volume.{md,json}")
    args = parser.parse_args(argv)
    config = VolumeBenchConfig.quick() if args.quick else VolumeBenchConfig()
    overrides = {key: getattr(args, key) for key in ("shape", "tile", "overlap") if getattr(args, key) is not None}
    if args.backbone:
        overrides["backbone"] = UNetConfig(depth=args.backbone[0], base_channels=args.backbone[1])
    config = VolumeBenchConfig(**{**asdict(config), "backbone": config.backbone, **overrides})
    with tempfile.TemporaryDirectory() as folder:
        result = measure(config, Path(folder), args.device)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bench_volume.json").write_text(json.dumps(result, indent=1))
    (args.results / "bench_volume.md").write_text(markdown(result))
    print(markdown(result), end="")
    print(f"wrote {args.results / 'bench_volume.md'} and {args.results / 'bench_volume.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
