"""make bench on a tiny configuration: every section is measured and written; the speed options give
the same losses as float32."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.bench import (SECTIONS, BenchConfig, build_trainable, lightning_steps, parse_option, run_bench,
                             training_batches)
from benchmark.cli import main
from methods import METHODS

QUICK = BenchConfig.quick()


def losses(option: str, name: str = "noise2same", dims: int = 2) -> list[float]:
    speed, precision = parse_option(option)
    shape = (16, 16) if dims == 2 else (4, 16, 16)
    batches = training_batches(METHODS.get(name), 1, shape, 2, 4)
    return lightning_steps(build_trainable(name, QUICK, dims, **speed), batches, torch.device("cpu"), precision)[1]


@pytest.mark.parametrize("option, dims", [("channels_last", 2), ("channels_last", 3), ("compile:aot_eager", 2)])
def test_layout_and_compile_leave_the_losses_alone(option, dims):
    assert losses(option, dims=dims) == pytest.approx(losses("float32", dims=dims), rel=1e-4, abs=1e-6)


def test_bf16_follows_float32_to_its_precision():
    reference, bf16 = losses("float32"), losses("bf16-mixed")
    assert bf16 != reference  # it did run in bf16
    assert bf16 == pytest.approx(reference, rel=3e-2)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: float32, bf16-mixed, channels_last, compile"):
        parse_option("fp8")


def test_speed_options_reach_the_cell_config_from_the_command_line(tmp_path, capsys):
    argv = ["run", "table3", "--preset", "smoke", "--methods", "noise2same", "--datasets", "natural-gray",
            "--results", str(tmp_path), "--dry-run"]
    main(argv)
    plain = capsys.readouterr().out.split("\n1 cells")[0]  # the cell's lines, not the summary naming tmp_path
    main([*argv, "--channels-last", "--compile", "aot_eager", "--precision", "bf16-mixed"])
    fast = capsys.readouterr().out.split("\n1 cells")[0]
    assert "speed" not in plain and "precision=32-true" in plain
    assert "precision=bf16-mixed" in fast and plain.split(":")[0] != fast.split(":")[0]  # a new cell id


def test_quick_bench_writes_every_section(tmp_path):
    figures = run_bench(QUICK, torch.device("cpu"), tmp_path, echo=lambda line: None)
    stored = json.loads((tmp_path / "bench.json").read_text())
    assert stored["training"] == json.loads(json.dumps(figures["training"]))
    rows = {(row["method"], row["dims"]): row for row in figures["training"]}
    assert set(rows) == {("noise2void", 2), ("noise2same", 2), ("noise2void", 3), ("noise2same", 3)}
    for row in rows.values():
        assert row["steps_per_s"]["median"] > 0 and row["lightning_over_bare"]["median"] > 0
        assert row["steps_per_s"]["low"] <= row["steps_per_s"]["median"] <= row["steps_per_s"]["high"]
    wide = {(row["method"], row["dims"], row["channels"]) for row in figures["training_wide"]}
    assert wide == {(name, dims, 4) for name in QUICK.methods for dims in (2, 3)}
    for row in figures["training_wide"]:
        steps = QUICK.wide_steps_2d if row["dims"] == 2 else QUICK.wide_steps_3d
        assert row["over_one_pass"]["median"] > 0 and row["over_one_pass"]["n"] == steps
    assert "aten::" in figures["profile"]["table"] and "noise2same_over_one_pass 2-D 4 channels BN" in figures["summary"]
    assert [row["option"] for row in figures["options"]] == list(QUICK.options)
    assert figures["options"][2]["max_loss_difference"] < 1e-4  # channels_last
    tiled, whole = figures["inference"][-2:]
    assert tiled["voxels_per_s"]["median"] > 0 and whole["peak_memory_mb"] is not None
    assert figures["classical"][0]["method"] == "nlm" and figures["classical"][0]["test_images"] > 1
    report = (tmp_path / "bench.md").read_text()
    for heading in ("## Training", "## Training at the paper's widths", "## Profile of one noise2same step",
                    "## Speed options", "## Inference", "## Classical methods"):
        assert heading in report
    assert "| noise2same | 3-D | 1 |" in report and "Re-run later" not in report

    # Re-measuring one section keeps every other from the whole run, and the report says what was re-run.
    rerun = run_bench(QUICK, torch.device("cpu"), tmp_path, echo=lambda line: None, sections=("classical",))
    stored_again = json.loads((tmp_path / "bench.json").read_text())
    assert stored_again["training"] == stored["training"] and stored_again["inference"] == stored["inference"]
    assert stored_again["seconds"] == stored["seconds"] and rerun["rerun"]["sections"] == ["classical"]
    assert stored_again["classical"] != stored["classical"]  # measured again: its timings differ
    assert "Re-run later in" in (tmp_path / "bench.md").read_text()
    run_bench(QUICK, torch.device("cpu"), tmp_path, echo=lambda line: None, sections=SECTIONS)
    assert "rerun" not in json.loads((tmp_path / "bench.json").read_text())  # a whole run replaces it all


def test_sections_need_a_whole_run_of_the_same_configuration_to_go_into(tmp_path, capsys):
    assert main(["bench", "--quick", "--results", str(tmp_path), "--sections", "classical"]) == 2
    assert "run the whole bench first" in capsys.readouterr().err
    (tmp_path / "bench.json").write_text(json.dumps({"config": {"rounds": 99}, "environment": {"device": "cpu"}}))
    assert main(["bench", "--quick", "--results", str(tmp_path), "--sections", "classical"]) == 2
    assert "another configuration or device" in capsys.readouterr().err
    assert main(["bench", "--quick", "--results", str(tmp_path), "--sections", "inference,gpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown bench section(s) gpu: choose from training," in err



def test_a_wide_row_is_judged_by_its_narrower_rows_peak_scaled_by_the_width(monkeypatch):
    import benchmark.bench as bench

    narrow = {"method": "laine", "dims": 3, "channels": 32, "peak_memory_mb": 1024}
    monkeypatch.setattr(bench, "available_memory", lambda device: 10 * 2**30)
    assert bench.too_big(narrow, 96, torch.device("cpu")) is None  # 3 GiB of 8 usable
    monkeypatch.setattr(bench, "available_memory", lambda device: 3 * 2**30)
    assert bench.too_big(narrow, 96, torch.device("cpu")) == "needs about 3 GiB (1.0 GiB at 32 channels, x 3); 3 GiB free"
    assert bench.too_big({**narrow, "peak_memory_mb": None}, 96, torch.device("cpu")) is None
    assert bench.too_big(None, 96, torch.device("cpu")) is None
    monkeypatch.setattr(bench, "available_memory", lambda device: None)
    assert bench.too_big(narrow, 96, torch.device("cpu")) is None


def test_a_wide_row_that_would_not_fit_in_memory_is_skipped_and_the_report_says_why(monkeypatch):
    """On a CPU the system kills a process that runs out of memory, and the whole bench with it: a row
    judged too big is not run, the narrower rows are, and the report's line gives the reason."""
    import dataclasses

    import benchmark.bench as bench

    config = dataclasses.replace(QUICK, methods=("noise2void",), wide_channels=(8, 4))
    monkeypatch.setattr(bench, "too_big",
                        lambda row, channels, device: "needs about 9 GiB" if row and channels > 4 else None)
    rows = bench.training_wide(config, torch.device("cpu"), echo=lambda line: None)
    assert [(row["dims"], row["channels"], row.get("skipped")) for row in rows] == [
        (2, 4, None), (2, 8, "needs about 9 GiB"), (3, 4, None), (3, 8, "needs about 9 GiB")]
    assert rows[0]["peak_memory_mb"] is not None and rows[0]["over_one_pass"]["median"] > 0
    assert bench.wide_row_line(rows[1]) == "| noise2void | 2-D | 8 | 2 | not run: needs about 9 GiB | | | | |"
    assert bench.wide_row_line(rows[0]).startswith("| noise2void | 2-D | 4 | 2 | ")
