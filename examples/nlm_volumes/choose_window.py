"""NLM's window on the synthetic-3d volumes, chosen on the validation volumes (never the test ones).

At the cpu table's photon counts (Poisson peaks 2.5 / 1.5 / 1, conditions C1-C3) NLM at scikit-image's
usual window (patch 5, search distance 6: 13^3 voxels) averages whole nuclei away and scores below the
noisy input. This grid scores NLM through the generalised Anscombe transform of the known noise on the
three validation volumes (one per condition) by the Planaria protocol, for patch size, search distance
and h (in units of the stabilised noise std, 1):

    .venv/bin/python examples/nlm_volumes/choose_window.py

writes results.md beside this file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_nl_means

from datamodules.synthetic3d import CONDITION_NOISE, Synthetic3D
from methods.noise_level import known_noise

HERE = Path(__file__).parent
GRID = {"patch_size": (3, 5), "patch_distance": (1, 2, 3, 6), "h_factor": (0.4, 0.8, 1.2)}


def main() -> None:
    dataset = Synthetic3D(test_size=96)  # the cpu preset's synthetic-3d (its validation volumes are these)
    val = dataset.load_splits()["val"]
    scores: dict[tuple, list[float]] = {}
    for index, image_id in enumerate(val.ids):
        noise = known_noise(CONDITION_NOISE[image_id.split("-")[1]])
        noisy, clean = (torch.from_numpy(np.asarray(images[index], dtype=np.float64))[None]
                        for images in (val.noisy, val.clean))
        stabilised = noise.forward(noisy[0, 0].numpy())
        scores.setdefault(("input",), []).append(dataset.protocol.psnr(noisy, clean, transform=False).item())
        for setting in itertools.product(*GRID.values()):
            patch, distance, h = setting
            filtered = denoise_nl_means(stabilised, h=h, sigma=1.0, fast_mode=True, patch_size=patch,
                                        patch_distance=distance)
            estimate = torch.from_numpy(noise.inverse(filtered))[None, None]
            scores.setdefault(setting, []).append(dataset.protocol.psnr(estimate, clean).item())
    ranked = sorted(scores.items(), key=lambda item: -np.mean(item[1]))
    lines = ["| patch_size | patch_distance | h_factor | " + " | ".join(val.ids) + " | mean |",
             "|---" * (4 + len(val.ids)) + "|"]
    for setting, values in ranked:
        cells = list(setting) if len(setting) == 3 else ["input (no filter)", "", ""]
        lines.append("| " + " | ".join(map(str, cells)) + " | " + " | ".join(f"{v:.2f}" for v in values)
                     + f" | {np.mean(values):.2f} |")
    (HERE / "results.md").write_text("# NLM on the synthetic-3d validation volumes: PSNR (dB), best first\n\n"
                                     + "\n".join(lines) + "\n")
    print("\n".join(lines[:6]))


if __name__ == "__main__":
    main()
