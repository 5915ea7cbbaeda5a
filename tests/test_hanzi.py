"""The embedded HanZi generator: the paper's 13,029 characters, the split, and the paper size in little memory."""

import time
import tracemalloc
import unicodedata

import numpy as np
import pytest

from benchmark.registry import ConfigError
from datamodules.base import noisy_copies
from datamodules.hanzi import (NOTDEF_PROBE, PAPER_CHARACTERS, HanZi, draw_characters, gb2312_characters,
                               hanzi_characters, hanzi_noise, has_glyph)


def test_character_list_is_gb2312_then_further_gbk_ideographs_all_drawn_by_the_font():
    chars = hanzi_characters()
    common = gb2312_characters()
    assert len(chars) == PAPER_CHARACTERS == 13_029
    assert len(set(chars)) == len(chars)
    assert list(chars[:len(common)]) == common
    further = chars[len(common):]
    assert all(unicodedata.name(c).startswith("CJK UNIFIED IDEOGRAPH") for c in further)
    codes = [c.encode("gbk") for c in further]
    assert codes == sorted(codes) and all(0x81 <= code[0] <= 0xFE and code[1] != 0x7F for code in codes)
    assert all(has_glyph(c) for c in chars)


def test_has_glyph_refuses_notdef_and_blank_drawings():
    assert not has_glyph(NOTDEF_PROBE)
    assert not has_glyph("\ue000")  # private use: not in Noto Sans SC
    assert not has_glyph(" ")
    assert has_glyph("中")


def test_character_list_agrees_with_the_font_cmap():
    from fontTools.ttLib import TTFont
    from pylopdf_fonts_zh_cn import sans_path
    cmap = TTFont(str(sans_path()), lazy=True).getBestCmap()
    assert all(ord(c) in cmap for c in hanzi_characters())
    assert ord("\ue000") not in cmap and ord(NOTDEF_PROBE) not in cmap


def test_draws_within_gb2312_are_unchanged_and_larger_ones_add_further_characters():
    # The first characters and tiles of the committed cpu table (800 GB2312 characters, data_seed 0).
    assert draw_characters(800, np.random.default_rng(0))[:4] == ["助", "舛", "镪", "筋"]
    assert HanZi(n_characters=800, n_copies=2).splits["test"].ids[:5] == ["望#0", "尼#0", "蛘#0", "秃#0", "薰#0"]
    common = gb2312_characters()
    drawn = draw_characters(len(common) + 10, np.random.default_rng(0))
    assert len(set(drawn)) == len(drawn) and set(common) <= set(drawn)
    assert set(drawn) - set(common) <= set(hanzi_characters()[len(common):])


def test_lazy_tiles_match_the_eager_noisy_copies():
    splits = HanZi(n_characters=12, n_copies=3, sigma=0.5, data_seed=3).splits
    order = ("train", "val", "test")
    clean = [image for name in order for image in splits[name].clean]
    noisy, noisy2 = noisy_copies(clean, hanzi_noise(0.5), seed=3, split_tag=0)
    np.testing.assert_array_equal(np.stack([x for name in order for x in splits[name].noisy]), np.stack(noisy))
    np.testing.assert_array_equal(np.stack([x for name in order for x in splits[name].noisy2]), np.stack(noisy2))
    test = splits["test"]
    assert test.noisy[-1].dtype == np.float32 and test.noisy[-1].shape == (1, 64, 64)
    np.testing.assert_array_equal(test.noisy[-1], test.noisy[len(test.noisy) - 1])
    with pytest.raises(IndexError):
        test.noisy[len(test.noisy)]


def test_split_fractions():
    default = HanZi(n_characters=100, n_copies=2).splits
    assert [len(default[s].ids) for s in ("train", "val", "test")] == [140, 40, 20]
    paper = HanZi(n_characters=100, n_copies=2, val_fraction=0.05, test_fraction=0.1).splits
    assert [len(paper[s].ids) for s in ("train", "val", "test")] == [170, 10, 20]
    ids = [set(split.ids) for split in paper.values()]
    assert sum(map(len, ids)) == 200 and len(set.union(*ids)) == 200
    for bad in ({"val_fraction": 0.0}, {"test_fraction": -0.1}, {"val_fraction": 0.5, "test_fraction": 0.5}):
        with pytest.raises(ConfigError, match="val_fraction and test_fraction"):
            HanZi(**bad)
    with pytest.raises(ConfigError, match="test split"):
        HanZi(n_characters=2, n_copies=2, test_fraction=0.05).splits
    with pytest.raises(ConfigError, match="13029"):
        HanZi(n_characters=13_030)


def test_stand_in_only_below_the_paper_size():
    assert HanZi.stand_in is True
    assert HanZi().stand_in is True
    assert HanZi(n_characters=13_029, n_copies=2).stand_in is True
    assert HanZi(n_characters=13_029, n_copies=6).stand_in is False


def test_a_large_build_holds_no_images_and_serves_batches():
    # 7,000 characters (beyond GB2312) x 6 = 42,000 tiles: 2 GB as float32 arrays of 3 keys.
    hanzi_characters()  # the character list is measured by the tests above
    tracemalloc.start()
    start = time.perf_counter()
    dm = HanZi(n_characters=7_000, n_copies=6, val_fraction=0.05, test_fraction=0.1, batch_size=64,
               patch_size=64, train_samples=64, train_keys=frozenset({"noisy", "clean", "noisy2"}))
    splits = dm.splits
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [len(splits[s].ids) for s in ("train", "val", "test")] == [35_700, 2_100, 4_200]
    assert peak < 100 * 2**20
    batch = next(iter(dm.train_dataloader()))
    assert time.perf_counter() - start < 10
    assert {key: tuple(value.shape) for key, value in batch.items()} == {key: (64, 1, 64, 64) for key in batch}
