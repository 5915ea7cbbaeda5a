import json
import os

import pytest
from records import done_record, failed_record

from benchmark.store import DoneRecord, ResultStore, StoreWarning


def test_write_is_atomic_and_readable(tmp_path):
    store = ResultStore(tmp_path / "cells")
    assert store.load("a") is None and not store.has("a")
    store.write(done_record("a", {"0": 1.5}))
    assert store.has("a") and store.load("a") == done_record("a", {"0": 1.5})
    store.write(done_record("a", {"0": 2.5}))
    assert store.load("a").tests["test"].psnr_mean == 2.5
    assert os.listdir(tmp_path / "cells") == ["a.json"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    store.write(done_record("a"))
    before = (tmp_path / "a.json").read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.write(done_record("a", {"0": 30.0}))
    assert (tmp_path / "a.json").read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.json"]


def test_a_result_in_an_older_format_counts_as_not_finished_and_stays(tmp_path):
    (tmp_path / "old.json").write_text(json.dumps({"id": "old", "psnr_mean": 20.0, "format": 1}))
    store = ResultStore(tmp_path)
    assert store.load("old") is None and not store.has("old") and (tmp_path / "old.json").exists()


@pytest.mark.parametrize("content", ['{"id": "a", "status": "do', "", "[]", "null", '{"id": "a"}',
                                     json.dumps({**done_record("a").model_dump(mode="json"), "tests": None}),
                                     json.dumps(done_record("b").model_dump(mode="json")), "\xff\xfe"])
def test_a_damaged_record_is_moved_aside_with_a_warning_and_counts_as_missing(tmp_path, content):
    (tmp_path / "a.json").write_text(content) if content != "\xff\xfe" else (tmp_path / "a.json").write_bytes(b"\xff\xfe")
    store = ResultStore(tmp_path)
    with pytest.warns(StoreWarning, match=r"a\.json was moved aside to a\.corrupt-\d+"):
        assert store.record("a") is None
    assert not store.has("a") and [path.name.startswith("a.corrupt-") for path in tmp_path.iterdir()] == [True]
    store.write(done_record("a"))  # the next run's result takes its place
    assert isinstance(store.load("a"), DoneRecord)


def test_a_failed_record_never_replaces_a_result_and_is_retried_on_request(tmp_path):
    store = ResultStore(tmp_path)
    store.write(failed_record("a"))
    assert store.has("a") and not store.has("a", retry_failed=True)
    assert store.load("a") is None and store.failure("a") == "FloatingPointError: nan"
    store.write(done_record("a"))
    store.write(failed_record("a", "raced by another process"))
    assert store.load("a").status == "done" and store.failure("a") is None


def test_the_lock_of_a_cell_is_held_by_one_process_at_a_time(tmp_path):
    import subprocess
    import sys
    from filelock import Timeout

    store = ResultStore(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from benchmark.store import ResultStore\n"
                               "with ResultStore(sys.argv[1]).lock('a'):\n    print('held', flush=True); time.sleep(60)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(Timeout):
        with store.lock("a", wait=False):
            pass
    with store.lock("b", wait=False):  # other cells are free
        pass
    holder.kill()  # a process that dies releases its lock
    holder.wait()
    with store.lock("a", wait=False):
        pass


def test_an_unwritable_store_is_one_line_before_anything_runs(tmp_path):
    from benchmark.store import StoreError

    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot write results under .*file/cells: .*; choose a writable folder"):
        ResultStore(tmp_path / "file" / "cells").check_writable()
