"""BSD68 from the Noise2Void reproducibility archive, the files the paper's BSD68 column was trained on.

Training: the archive's noisy 180x180 patches of the 400 BSD training images (DnCNN's set; Gaussian
sigma 25 on 0-255, not clipped). Test: the 68 BSD68 images (321x481 or 481x321) with their noisy
copies, stored as pickled object arrays and read by the restricted unpickler of safe_npy. The archive
holds no clean training or validation image, so only methods that train on noisy images apply, and
there is no validation PSNR (the val split holds the archive's noisy validation patches only; the
test images are never used for monitoring). The noise is in the files: no seed is involved.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from datamodules.base import DataFileError, DenoisingDataModule, LazyImages, Split
from datamodules.evaluation import PSNRProtocol
from datamodules.registry import register_dataset
from datamodules.safe_npy import NpyError, load_npy

ROOT = "BSD68_reproducibility_data"
TRAIN = f"{ROOT}/train/DCNN400_train_gaussian25.npy"
VAL = f"{ROOT}/val/DCNN400_validation_gaussian25.npy"
TEST_NOISY = f"{ROOT}/test/bsd68_gaussian25.npy"
TEST_CLEAN = f"{ROOT}/test/bsd68_groundtruth.npy"
SIGMA = 25.0


def _single_channel(stack: np.ndarray, index: int) -> np.ndarray:
    """Image `index` of a stack of 2-D images (an (N, H, W) array or an object array) as (1, H, W) float32."""
    return np.asarray(stack[index], dtype=np.float32)[None]


@register_dataset("bsd68")
class BSD68(DenoisingDataModule):
    """The Noise2Void BSD68 archive under data_dir: noisy training patches, 68 noisy/clean test images."""

    protocol = PSNRProtocol(data_range=255.0)
    paper_columns = {"test": "BSD68"}
    stand_in = False
    provides = frozenset({"noisy"})
    description = ("BSD68 (Noise2Void archive): noisy 180x180 patches of BSD400 for training, the 68 BSD68 "
                   "test images; Gaussian sigma=25 on 0-255")
    expected_files = (TRAIN, VAL, TEST_NOISY, TEST_CLEAN)
    source = ("https://download.fht.org/jug/n2v/BSD68_reproducibility_data.zip (Noise2Void reproducibility "
              "archive, careamics-portfolio entry N2V_BSD68, sha256 "
              "32c66d41196c9cafff465f3c7c42730f851c24766f70383672e18b8832ea8e55), extracted into data_dir")

    @property
    def gaussian_sigma(self) -> float:
        return SIGMA

    def _read(self, name: str) -> np.ndarray:
        """The 2-D images stored in data_dir/name: an (N, H, W) stack (memory-mapped) or a 1-D object
        array of 2-D arrays; anything else is a DataFileError naming the file."""
        path = self.data_dir / name
        try:
            array = load_npy(path, mmap=True)
        except (NpyError, OSError) as error:
            raise DataFileError.about(path, error, self.source) from None
        pickled = array.dtype == object
        if array.ndim != (1 if pickled else 3) or (pickled and any(image.ndim != 2 for image in array)):
            raise DataFileError.about(path, f"expected a stack of 2-D images, found a {array.dtype} array of "
                                      f"shape {array.shape}", self.source)
        return array

    def _stack_split(self, name: str, prefix: str) -> Split:
        """A split of noisy images only, made on demand from a memory-mapped stack."""
        stack = self._read(name)
        ids = [f"{prefix}_{i:04d}" for i in range(len(stack))]
        return Split(noisy=LazyImages(partial(_single_channel, stack), len(stack)), ids=ids)

    def load_splits(self) -> dict[str, Split]:
        noisy, clean = (self._read(name) for name in (TEST_NOISY, TEST_CLEAN))
        if len(noisy) != len(clean) or any(n.shape != c.shape for n, c in zip(noisy, clean)):
            raise DataFileError.about(self.data_dir / TEST_NOISY, f"its images do not match those of {TEST_CLEAN} "
                                      "in number or shape", self.source)
        return {
            "train": self._stack_split(TRAIN, "train"),
            "val": self._stack_split(VAL, "val"),
            "test": Split(noisy=[_single_channel(noisy, i) for i in range(len(noisy))],
                          ids=[f"bsd68_{i:02d}" for i in range(len(noisy))],
                          clean=[_single_channel(clean, i) for i in range(len(clean))]),
        }
