"""The statistics of a report (benchmark.statistics) against direct scipy calls, and the report built on
them: intervals, paired tests, Holm, ties with the best (in PSNR and in SSIM, each on its own), a report
identical when rebuilt, and the empty SSIM field of a cell stored before SSIM was kept."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark import statistics
from benchmark.registry import ConfigError
from benchmark.report import build_report, compare, ties_with_best, write_report
from benchmark.spec import TableSpec
from benchmark.store import ResultStore
from datamodules import DATASETS
from datamodules.base import clean_id
from records import done_record

SCORES = np.array([26.1, 25.4, 27.9, 24.8, 26.6, 25.9, 27.2, 26.0])


def test_mean_ci_is_scipys_percentile_bootstrap_with_the_fixed_seed():
    interval = statistics.mean_ci(SCORES)
    direct = stats.bootstrap((SCORES,), np.mean, n_resamples=statistics.RESAMPLES, method="percentile",
                             rng=np.random.default_rng(statistics.SEED)).confidence_interval
    assert interval.mean == pytest.approx(SCORES.mean())
    assert (interval.low, interval.high) == (pytest.approx(direct.low), pytest.approx(direct.high))
    assert interval.low < SCORES.mean() < interval.high
    assert interval.half_width == pytest.approx((direct.high - direct.low) / 2)
    assert statistics.mean_ci(SCORES) == interval  # seeded: the same bounds every time
    assert np.isnan(statistics.mean_ci(SCORES[:1]).low)  # one image: no interval
    assert statistics.mean_ci(np.full(4, 3.0)) == statistics.Interval(3.0, 3.0, 3.0)


def test_seed_spread_and_the_t_interval_over_seeds():
    seeds = np.array([26.02, 26.19, 26.11])
    assert statistics.seed_std(seeds) == pytest.approx(np.std(seeds, ddof=1))
    assert np.isnan(statistics.seed_std(seeds[:1]))
    interval = statistics.seed_interval(seeds)
    low, high = stats.t.interval(0.95, 2, loc=seeds.mean(), scale=stats.sem(seeds))
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))


def test_paired_tests_are_scipys_exact_sign_flip_and_wilcoxon():
    rng = np.random.default_rng(1)
    a = SCORES
    b = SCORES - 0.3 + rng.normal(0, 0.2, len(SCORES))
    paired = statistics.paired_difference(a, b)
    d = a - b
    exact = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf).pvalue
    # Exact means every one of the 2^8 sign patterns: the count of |mean| >= observed, over 256.
    flips = np.array(list(itertools.product([-1, 1], repeat=len(d))))
    by_hand = np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean()) - 1e-12)
    assert paired.test == "sign-flip" and paired.p_value == pytest.approx(exact) == pytest.approx(by_hand)
    assert paired.interval.mean == pytest.approx(d.mean())
    direct = stats.bootstrap((d,), np.mean, n_resamples=statistics.RESAMPLES, method="percentile",
                             rng=np.random.default_rng(statistics.SEED)).confidence_interval
    assert (paired.interval.low, paired.interval.high) == (pytest.approx(direct.low), pytest.approx(direct.high))

    many_a = rng.normal(26, 1, 40)
    many_b = many_a - rng.normal(0.1, 0.3, 40)
    paired = statistics.paired_difference(many_a, many_b)
    assert paired.test == "wilcoxon" and paired.n_images == 40
    assert paired.p_value == pytest.approx(stats.wilcoxon(many_a - many_b).pvalue)


def test_identical_methods_are_not_significant_and_a_clear_shift_is():
    rng = np.random.default_rng(2)
    images = rng.normal(26, 2, 60)
    same = statistics.paired_difference(images, images.copy())
    assert same.p_value == 1.0 and same.interval.mean == 0.0
    shifted = statistics.paired_difference(images + 0.5 + rng.normal(0, 0.1, 60), images)
    assert shifted.p_value < 1e-6 and shifted.interval.low > 0.3
    # Noise of the same size as the shift's spread, and no shift: not significant.
    noise = statistics.paired_difference(images + rng.normal(0, 0.1, 60), images)
    assert noise.p_value > 0.05 and noise.interval.low < 0 < noise.interval.high
    # With 4 images the exact test cannot go below 2/16, however clear the shift.
    assert statistics.paired_difference(images[:4] + 5, images[:4]).p_value == statistics.smallest_p(4) == 0.125
    assert statistics.paired_difference(images[:1] + 5, images[:1]).p_value == 1.0  # one image tells nothing


def test_holm_against_its_definition():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> running max 0.06
    adjusted = statistics.holm(p)
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and np.isnan(adjusted[4])
    assert statistics.holm([0.5, 0.9]) == [1.0, 1.0]
    assert statistics.holm([]) == []


def scores(values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=[f"image{i}" for i in range(len(values))])


def test_ties_with_best_marks_only_methods_not_significantly_below():
    rng = np.random.default_rng(3)
    base = rng.normal(26, 2, 30)
    rows = {"best": scores(base + 1.0), "twin": scores(base + 1.0 + rng.normal(0, 0.05, 30)),
            "worse": scores(base)}
    assert ties_with_best(rows) == {"best", "twin"} or ties_with_best(rows) == {"twin", "best"}
    table = compare(rows, "worse")
    assert (table["p_holm"] < 0.05).all() and (table["difference"] > 0.9).all()
    # Four images: nothing can be told apart, every method ties; a report gives such a column no marks.
    assert ties_with_best({name: series[:4] for name, series in rows.items()}) == set(rows)
    assert not statistics.can_separate(4, 2) and statistics.can_separate(6, 1) and not statistics.can_separate(6, 2)
    assert statistics.can_separate(13, 50) and statistics.can_separate(1, 0)


def fill_store(store: ResultStore, spec: TableSpec, rng: np.random.Generator, with_ssim: bool = False) -> list:
    """Finished cells of table3's smoke preset for three methods, two seeds each: 20 test images on hanzi,
    4 on natural-gray; with SSIM where asked, in which noise2void leads (in PSNR it ties noise2same)."""
    cells = spec.cells("smoke", ["noise2same", "noise2void", "input"], ["hanzi", "natural-gray"], [0, 1])
    shift = {"noise2same": 1.0, "noise2void": 1.0, "input": -3.0}
    ssim_shift = {"noise2same": 0.0, "noise2void": 0.05, "input": -0.3}
    for cell in cells:
        images = [f"t{i}@draw{k}" for i in range(20 if cell.dataset == "hanzi" else 4) for k in range(2)]
        psnr = {image: 10 + shift[cell.method] + 0.1 * i + rng.normal(0, 0.05) for i, image in enumerate(images)}
        ssim = {image: 0.5 + ssim_shift[cell.method] + 0.01 * i + rng.normal(0, 0.002) for i, image in enumerate(images)}
        store.write(done_record(cell.id, psnr, ssim if with_ssim else None, dataset=cell.dataset, method=cell.method,
                                seed=cell.seed))
    return cells


def test_report_has_intervals_marks_deltas_and_is_identical_when_rebuilt(tmp_path):
    spec = TableSpec.load("table3")
    store = ResultStore(tmp_path / "runs" / "cells")
    cells = fill_store(store, spec, np.random.default_rng(4))
    report = build_report(spec, cells, store)
    stats_row = report.stats.loc[("noise2same", "psnr", "hanzi")]
    assert stats_row["n_images"] == 20 and stats_row["n_seeds"] == 2 and stats_row["seed_std"] >= 0
    assert stats_row["delta"] == pytest.approx(stats_row["mean"] - 14.38)
    text = report.text()
    psnr = text.xs("PSNR", level="metric")
    assert psnr.loc["noise2same", "hanzi"].startswith("**") and " +- " in psnr.loc["noise2same", "hanzi"]
    assert not psnr.loc["input", "hanzi"].startswith("**")  # 4 dB below: significantly worse
    assert psnr.loc["noise2same", "hanzi paper (HanZi)"] == f"14.38 ({stats_row['mean'] - 14.38:+.2f})"
    assert not any(field.startswith("**") for field in text["natural-gray"])  # 4 images: no test can separate
    assert list(report.undecided) == ["natural-gray"]
    # Stored before SSIM was kept: every SSIM field is empty, with one footnote saying how to add it.
    assert set(text.xs("SSIM", level="metric")["hanzi"]) == {""}
    assert text.loc[("input", "SSIM"), "hanzi paper (HanZi)"] == "-"  # the paper has no SSIM

    first, second = tmp_path / "first", tmp_path / "second"
    write_report(spec, "smoke", cells, store, first)
    write_report(spec, "smoke", cells, store, second)
    names = sorted(path.name for path in first.iterdir())
    assert names == ["table3.csv", "table3.md", "table3.png", "table3_vs_noise2same.csv", "table3_vs_noise2same.md"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    page = (first / "table3.md").read_text()
    assert "No marks in natural-gray (4 images, 2 comparisons" in page
    assert "| noise2same | SSIM | [1] | - | [1] | - |" in page
    assert (f"1. SSIM not stored for this cell; `python -m benchmark rescore table3 --preset smoke --seeds 0,1 "
            f"--results {tmp_path}` computes it.") in page
    csv = pd.read_csv(first / "table3.csv")
    assert {"mean", "ci_low", "ci_high", "n_images", "n_seeds", "seed_std", "paper", "delta"} <= set(csv.columns)
    versus = (first / "table3_vs_noise2same.md").read_text()
    assert re.search(r"\| input \| \*\*-4\.0\d \[-4\.\d\d, -\d\.\d\d\] p=[\d.e-]+\*\* \|", versus)
    assert re.search(r"\| noise2void \| [-+]0\.0\d \[-0\.\d\d, \+0\.\d\d\] p=0\.\d+ \|", versus)  # not significant


def test_ssim_is_a_second_metric_with_its_own_intervals_ties_and_comparison(tmp_path):
    spec = TableSpec.load("table3")
    store = ResultStore(tmp_path / "runs" / "cells")
    cells = fill_store(store, spec, np.random.default_rng(5), with_ssim=True)
    report = build_report(spec, cells, store)
    row = report.stats.loc[("noise2void", "ssim", "hanzi")]
    assert row["n_images"] == 20 and row["n_seeds"] == 2 and row["ci_low"] < row["mean"] < row["ci_high"]
    assert np.isnan(row["paper"]) and not report.no_ssim
    text = report.text()
    assert list(text.index[:2]) == [("input", "PSNR"), ("input", "SSIM")]  # SSIM beside PSNR, per method
    # In PSNR noise2same and noise2void tie; in SSIM noise2void leads alone (0.05 above on all 20 images).
    assert all(text.loc[(method, "PSNR"), "hanzi"].startswith("**") for method in ("noise2same", "noise2void"))
    assert re.fullmatch(r"\*\*0\.\d{3} \+- 0\.\d{3}\*\*", text.loc[("noise2void", "SSIM"), "hanzi"])
    assert not text.loc[("noise2same", "SSIM"), "hanzi"].startswith("**")
    write_report(spec, "smoke", cells, store, tmp_path)
    csv = pd.read_csv(tmp_path / "table3.csv")
    assert list(csv.columns) == ["method", "metric", "column", "mean", "ci_low", "ci_high", "n_images", "n_seeds",
                                 "seed_std", "paper", "delta", "tie_with_best"]
    assert set(csv["metric"]) == {"PSNR", "SSIM"} and len(csv) == 2 * 3 * 2  # methods x columns per metric
    versus = pd.read_csv(tmp_path / "table3_vs_noise2same.csv")
    assert list(versus.columns[:3]) == ["row", "metric", "column"]
    ssim = versus.set_index(["row", "metric", "column"]).loc[("noise2void", "SSIM", "hanzi")]
    assert ssim["difference"] == pytest.approx(0.05, abs=0.005) and ssim["p_holm"] < 0.05
    page = (tmp_path / "table3_vs_noise2same.md").read_text()
    assert "SSIM:" in page and re.search(r"\| noise2void \| \*\*\+0\.05\d \[\+0\.0\d\d, \+0\.0\d\d\] p=", page)
    assert "SSIM not stored" not in (tmp_path / "table3.md").read_text()


def test_test_draws_score_each_clean_image_under_fixed_noise_draws():
    one = DATASETS.get("natural-gray")(max_size=32).splits["test"]
    three = DATASETS.get("natural-gray")(max_size=32, test_draws=3).splits["test"]
    assert three.ids[:3] == ["camera@draw0", "camera@draw1", "camera@draw2"] and len(three.ids) == 3 * len(one.ids)
    assert {clean_id(image_id) for image_id in three.ids} == set(one.ids)
    assert np.array_equal(three.noisy[0], one.noisy[0]) and np.array_equal(three.clean[5], one.clean[1])
    assert not np.array_equal(three.noisy[1], three.noisy[0]) and not np.array_equal(three.noisy[1], one.noisy2[0])
    again = DATASETS.get("natural-gray")(max_size=32, test_draws=3).splits["test"]
    assert np.array_equal(again.noisy[4], three.noisy[4])  # each draw is fixed
    assert np.std(three.noisy[2] - three.clean[2]) == pytest.approx(25, rel=0.1)
    assert clean_id("甲#1") == "甲#1" and clean_id("a@drawing") == "a@drawing"
    with pytest.raises(ConfigError, match="test_draws 2 needs test noise this dataset can draw again"):
        DATASETS.get("hanzi")(n_characters=20, test_draws=2).splits


def test_records_without_the_environment_fields_still_validate(tmp_path):
    store = ResultStore(tmp_path)
    store.write(done_record("old"))
    assert store.load("old").torch_threads is None and store.load("old").cpu_capability is None
    store.write(done_record("new", torch_threads=1, cpu_capability="AVX512", cpu_model="Xeon"))
    assert store.load("new").torch_threads == 1 and store.load("new").cpu_capability == "AVX512"
