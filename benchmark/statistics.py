"""Uncertainty of a table's numbers: pure functions over arrays, built on scipy.stats.

The unit of resampling is the test image: the caller averages a cell's seeds and repeated noise draws of
one clean image into that image's score (benchmark.report), so they move together in every bootstrap.
The intervals and tests thus hold the trained networks fixed; the variation between training runs, which
Bouthillier et al. (2021) count among a benchmark's sources of variance, is reported beside them
(`seed_std`). Every bootstrap is seeded, so a report rebuilt from the same store is identical byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 9999
SEED = 0
# Up to this many images the paired test is the exact sign-flip permutation test (2^n sign patterns);
# above it, the Wilcoxon signed-rank test.
EXACT_MAX_IMAGES = 12


@dataclass(frozen=True)
class Interval:
    """A mean with the bounds of its confidence interval (NaN where it cannot be estimated)."""

    mean: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """(high - low) / 2, the `+-` of a printed field."""
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class PairedDifference:
    """Mean per-image difference a - b over n images, its bootstrap CI, the test used and its p-value."""

    interval: Interval
    n_images: int
    test: str
    p_value: float


def _bootstrap_mean(values: np.ndarray, confidence: float, resamples: int, seed: int) -> Interval:
    """Mean of `values` and its percentile bootstrap CI (images drawn with replacement), by scipy."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if len(values) else float("nan")
    if len(values) < 2:
        return Interval(mean, float("nan"), float("nan"))
    if np.all(values == values[0]):  # every resample has the same mean
        return Interval(mean, mean, mean)
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return Interval(mean, float(result.confidence_interval.low), float(result.confidence_interval.high))


def mean_ci(per_image: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
            seed: int = SEED) -> Interval:
    """mean_i s_i with its percentile bootstrap CI over images (n < 2: NaN bounds)."""
    return _bootstrap_mean(per_image, confidence, resamples, seed)


def seed_std(per_seed_means: np.ndarray) -> float:
    """Sample standard deviation (ddof 1) over seeds of a cell's mean over test images; NaN for one seed."""
    values = np.asarray(per_seed_means, dtype=float)
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def seed_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """mean over seeds with the Student-t CI mean +- t_{n-1} s / sqrt(n) (for curves; n < 2: NaN bounds)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return Interval(mean, float("nan"), float("nan"))
    spread = stats.sem(values)
    if spread == 0:
        return Interval(mean, mean, mean)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=spread)
    return Interval(mean, float(low), float(high))


def sign_flip_p(differences: np.ndarray) -> float:
    """Two-sided p of H0 'each d_i is as likely -d_i': the share of all 2^n sign patterns whose |mean| is at
    least the observed one (exact permutation test, scipy.stats.permutation_test)."""
    differences = np.asarray(differences, dtype=float)
    if len(differences) < 2 or not np.any(differences):  # one image: both signs give the same |mean|
        return 1.0
    result = stats.permutation_test((differences,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                    alternative="two-sided")
    return float(result.pvalue)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided p of the Wilcoxon signed-rank test of H0 'the d_i are symmetric about 0' (zeros dropped)."""
    differences = np.asarray(differences, dtype=float)
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                      seed: int = SEED) -> PairedDifference:
    """d_i = a_i - b_i over the same images: mean d with its paired bootstrap CI (images resampled, a and b
    together) and the p-value of a paired test: exact sign-flip for n <= 12 images, Wilcoxon above."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(differences)
    interval = _bootstrap_mean(differences, confidence, resamples, seed)
    if n == 0:
        return PairedDifference(interval, 0, "none", float("nan"))
    if n <= EXACT_MAX_IMAGES:
        return PairedDifference(interval, n, "sign-flip", sign_flip_p(differences))
    return PairedDifference(interval, n, "wilcoxon", wilcoxon_p(differences))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: with p sorted ascending, p'_(k) = max_{j<=k} min(1, (m - j + 1) p_(j));
    NaNs stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def smallest_p(n_images: int) -> float:
    """The smallest two-sided p-value the exact sign-flip test can give with n images: 2 / 2^n."""
    return 2.0 / 2 ** n_images if n_images else 1.0


def can_separate(n_images: int, comparisons: int, alpha: float = ALPHA) -> bool:
    """Whether any of `comparisons` paired tests on n images can be significant after Holm: m * 2 / 2^n <= alpha
    where the sign-flip test is used (n <= 12); always for the Wilcoxon sizes above, and with no comparison."""
    return comparisons == 0 or n_images > EXACT_MAX_IMAGES or comparisons * smallest_p(n_images) <= alpha
