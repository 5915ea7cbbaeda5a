import json
import os

from benchmark.store import ResultStore


def test_write_is_atomic_and_readable(tmp_path):
    store = ResultStore(tmp_path / "cells")
    assert store.load("a") is None and not store.has("a")
    store.write({"id": "a", "psnr_mean": 1.5})
    assert store.has("a") and store.load("a") == {"id": "a", "psnr_mean": 1.5, "format": 2}
    store.write({"id": "a", "psnr_mean": 2.5})
    assert store.load("a")["psnr_mean"] == 2.5
    assert os.listdir(tmp_path / "cells") == ["a.json"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file(tmp_path):
    store = ResultStore(tmp_path)
    store.write({"id": "a", "v": 1})
    try:
        store.write({"id": "a", "v": object()})  # not JSON-serialisable: fails mid-write
    except TypeError:
        pass
    assert json.loads((tmp_path / "a.json").read_text()) == {"id": "a", "v": 1, "format": 2}
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


def test_a_result_in_an_older_format_counts_as_not_finished(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"id": "old", "psnr_mean": 20.0}))
    store = ResultStore(tmp_path)
    assert store.load("old") is None and not store.has("old")
