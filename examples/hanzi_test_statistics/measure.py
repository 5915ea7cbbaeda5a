"""HanZi's test standardisation, measured on the cpu table's trained cells: every trained network of the
hanzi column (every stored seed) scored twice on the same test tiles, each tile standardised by its own
mean and std (this suite's default) and by one mean and std over the whole test set (the official
notebook's; `evaluation: {test_statistics: set}`, the paper preset's choice). Nothing is retrained.

    .venv/bin/python examples/hanzi_test_statistics/measure.py [--results results]

writes results.md and results.csv beside this file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy import stats

from benchmark.cell import build_datamodule, score
from benchmark.denoise import load_method, stored_cell
from benchmark.spec import TableSpec
from benchmark.store import ResultStore

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    cells = [cell for cell in TableSpec.load("table3").cells("cpu", datasets=["hanzi"], seeds=[0, 1, 2])
             if cell.trainable and not cell.not_applicable]
    store = ResultStore(args.results / "runs" / "cells")
    rows = []
    for cell in cells:
        trained = stored_cell(args.results, cell.id)
        method = load_method(trained)
        datamodule = build_datamodule(cell, Path("data"))
        datamodule.setup("test")
        scores = {statistics: score(method, datamodule, cell.id, statistics=statistics)["test"]
                  for statistics in ("image", "set")}
        stored = store.load(cell.id).tests["test"].psnr_mean
        assert abs(scores["image"].mean - stored) < 1e-6, f"{cell.id}: {scores['image'].mean} != stored {stored}"
        paired = stats.wilcoxon(scores["set"].psnr, scores["image"].psnr)
        rows.append({"method": cell.method, "seed": cell.seed, "per_image": scores["image"].mean,
                     "whole_set": scores["set"].mean, "difference": scores["set"].mean - scores["image"].mean,
                     "wilcoxon_p": paired.pvalue})
        print(rows[-1])
    data = pd.DataFrame(rows)
    data.to_csv(HERE / "results.csv", index=False)
    summary = data.groupby("method", sort=False).agg(per_image=("per_image", "mean"), whole_set=("whole_set", "mean"),
                                                       difference=("difference", "mean"),
                                                       largest_p=("wilcoxon_p", "max"), seeds=("seed", "size"))
    lines = ["| method | per image | whole set | difference | Wilcoxon p (largest) | seeds |", "|---|---|---|---|---|---|"]
    lines += [f"| {method} | {r.per_image:.3f} | {r.whole_set:.3f} | {r.difference:+.3f} | {r.largest_p:.2f} | {r.seeds} |"
              for method, r in summary.iterrows()]
    (HERE / "results.md").write_text(
        "# HanZi test PSNR (dB): each tile standardised by its own statistics or by the whole test set's\n\n"
        "cpu table3 cells (160 test tiles each), mean over the stored seeds; difference = whole set - per image; "
        "p: the paired Wilcoxon test over the 160 tiles of each seed (the largest of the seeds).\n\n"
        + "\n".join(lines) + "\n")

if __name__ == "__main__":
    main()
