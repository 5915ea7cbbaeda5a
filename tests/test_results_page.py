"""The gallery and the results page: crops kept when a cell is scored and stored beside its record, one
gallery per column in the table's row order, and results/index.html with every report, image and the
environment, checked in headless Chromium (every table and image rendered, a column sorted by a click)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.gallery import GAP, MISSING, write_galleries
from benchmark.html_report import browser, dump_dom, screenshot
from benchmark.spec import TableSpec
from benchmark.store import ResultStore, StoreWarning
from datamodules.crops import VOLUME_VIEWS, crop_image, crop_window
from datamodules.evaluation import PSNRProtocol, evaluate

SMOKE = ["--preset", "smoke", "--methods", "input,nlm", "--datasets", "natural-gray,synthetic-3d"]
COLUMNS = ["natural-gray", "synthetic-3d C1", "synthetic-3d C2", "synthetic-3d C3"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder after a smoke Table 3 of two classical rows on a 2-D and a 3-D dataset."""
    folder = tmp_path_factory.mktemp("results")
    assert main(["run", "table3", *SMOKE, "--results", str(folder)]) == 0
    return folder


def smoke_cells() -> list:
    return TableSpec.load("table3").cells("smoke", methods=["input", "nlm"], datasets=["natural-gray", "synthetic-3d"])


def test_the_crop_is_the_clean_image_window_of_highest_variance():
    clean = np.zeros((1, 1, 40, 50), np.uint8)
    clean[0, 0, 20:30, 5:15] = 255 * (np.indices((10, 10)).sum(0) % 2)  # a checkerboard: any window off it varies less
    assert crop_window(clean, 10) == (20, 5)


def test_a_volume_shows_its_central_slice_and_its_max_projection():
    volume = torch.zeros(1, 5, 20, 20)
    volume[0, 0, 3, 4] = 1.0  # off the central slice: only the projection shows it
    volume[0, 2, 10:14, 10:14] = 0.5
    crop = crop_image(PSNRProtocol(1.0), "v", volume + 0.1, volume, volume, size=32)  # the whole 20 x 20
    assert crop.views == VOLUME_VIEWS and crop.clean.shape == (2, 20, 20) and crop.clean.dtype == np.uint8
    assert crop.clean[0, 3, 4] == 0 and crop.clean[1, 3, 4] == 255 and crop.clean[0, 11, 11] == crop.clean[1, 11, 11] == 128
    np.testing.assert_array_equal(crop.prediction, crop.clean)
    assert crop.noisy_psnr == pytest.approx(20.0)


def test_evaluate_crops_each_clean_image_once_and_the_store_keeps_them(tmp_path):
    clean = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    clean[1] = clean[0]  # "a" under a second noise draw
    loader = [{"noisy": clean + 0.05, "clean": clean, "id": ["a@draw0", "a@draw1", "b"]}]
    evaluation = evaluate(lambda x: x * 0.5, loader, PSNRProtocol(1.0), crops=2)
    assert [crop.image for crop in evaluation.crops] == ["a@draw0", "b"]
    store = ResultStore(tmp_path)
    store.write_crops("cell", {"test": evaluation})
    stored = store.crops("cell")["test"]
    for kept, read in zip(evaluation.crops, stored):
        assert (read.image, read.views, read.corner, read.noisy_psnr) == (kept.image, kept.views, kept.corner,
                                                                             kept.noisy_psnr)
        for name in ("noisy", "prediction", "clean"):
            np.testing.assert_array_equal(getattr(read, name), getattr(kept, name))
    assert store.cell_ids() == [] and sorted(p.name for p in tmp_path.iterdir()) == ["cell.crops.npz"]  # no temporary
    store.crops_path("cell").write_bytes(b"not a zip")
    with pytest.warns(StoreWarning, match=r"cell\.crops\.npz could not be read"):
        assert store.crops("cell") == {}
    assert store.crops_path("cell").read_bytes() == b"not a zip"  # left as it is
    assert store.crops("other") == {}


def test_crops_that_cannot_be_written_are_a_warning_not_the_cells_failure(tmp_path, monkeypatch):
    loader = [{"noisy": torch.rand(1, 1, 8, 8), "clean": torch.rand(1, 1, 8, 8), "id": ["a"]}]
    evaluation = evaluate(lambda x: x, loader, PSNRProtocol(1.0), crops=1)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.warns(StoreWarning, match="the crops of cell a could not be stored .*No space left on device"):
        assert ResultStore(tmp_path).write_crops("a", {"test": evaluation}) is None
    assert list(tmp_path.iterdir()) == []  # no temporary left behind


def panel(picture: Image.Image, box: tuple[int, int, int, int], scale: int) -> np.ndarray:
    """The crop a gallery panel shows, at its stored size."""
    return np.asarray(picture.crop(box))[::scale, ::scale]


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).convert("RGB"))


def test_each_column_gets_a_gallery_of_the_stored_crops_in_row_order(results, tmp_path):
    report = results / "smoke" / "partial"
    assert sorted(p.name for p in report.glob("gallery_*.png")) == [
        "gallery_table3_natural-gray.png", "gallery_table3_synthetic-3d_C1.png", "gallery_table3_synthetic-3d_C2.png",
        "gallery_table3_synthetic-3d_C3.png"]
    shutil.copytree(results / "runs" / "cells", tmp_path / "cells")
    store = ResultStore(tmp_path / "cells")
    cells = smoke_cells()
    by_key = {(cell.dataset, cell.method): cell for cell in cells}
    store.crops_path(by_key["natural-gray", "nlm"].id).unlink()  # a record stored before crops were kept
    layouts = write_galleries(TableSpec.load("table3"), cells, store, tmp_path / "out")
    assert sorted(path.name for path in layouts) == sorted(p.name for p in report.glob("gallery_*.png"))

    for dataset, test_set, name in (("natural-gray", "test", "natural-gray"), ("synthetic-3d", "C2", "synthetic-3d_C2")):
        path = tmp_path / "out" / f"gallery_table3_{name}.png"
        layout, picture = layouts[path], Image.open(path).convert("RGB")
        crops = {method: store.crops(by_key[dataset, method].id).get(test_set, []) for method in ("input", "nlm")}
        reference = crops["input"]
        rows = [(crop, view) for crop in reference for view in range(len(crop.views))]
        assert len(rows) == (2 if dataset == "natural-gray" else len(VOLUME_VIEWS))  # two images; a volume's two views
        last = layout.box(len(rows) - 1, 3)  # clean, noisy, input, nlm
        assert picture.size == (last[2] + GAP, last[3] + GAP)
        for r, (crop, view) in enumerate(rows):
            shown = [crop.clean[view], crop.noisy[view], crop.prediction[view]]
            for c, pixels in enumerate(shown):
                np.testing.assert_array_equal(panel(picture, layout.box(r, c), layout.scale), as_rgb(pixels))
            nlm = panel(picture, layout.box(r, 3), layout.scale)
            if crops["nlm"]:
                np.testing.assert_array_equal(nlm, as_rgb(crops["nlm"][r // len(crop.views)].prediction[view]))
            else:  # "not stored"
                assert tuple(nlm[0, 0]) == MISSING and tuple(nlm[-1, -1]) == MISSING


def test_report_writes_the_page_and_galleries_from_the_store_alone(results, capsys):
    report = results / "smoke" / "partial"
    for path in [report / "index.html", *report.glob("gallery_*.png")]:
        path.unlink()
    start = time.perf_counter()
    assert main(["report", "table3", *SMOKE, "--results", str(results)]) == 0
    assert time.perf_counter() - start < 60
    assert f"wrote {report / 'index.html'}" in capsys.readouterr().out
    assert len(list(report.glob("gallery_*.png"))) == len(COLUMNS)
    page = (report / "index.html").read_text()
    assert page.count("<table") == 2  # table3 (no comparison: no noise2same row) and the environment
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert set(sources) == {p.name for p in report.glob("*.png")} and all((report / s).is_file() for s in sources)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing from the internet
    shown = ("natural-gray paper (BSD68)", "Uncertainty:", "Datasets:", "<code>synthetic-3d</code>")  # paper, notes, data
    assert all(text in page for text in shown)
    environment = page[page.index('<section id="environment">'):]
    assert torch.__version__ in environment and "commits" in environment


SELFTEST = """<script>
window.addEventListener("load", () => {
  const table = document.querySelector("table"), cells = row => Array.from(row.cells).map(c => c.textContent.trim());
  const header = Array.from(table.tHead.rows[0].cells).find(th => th.textContent.trim() === "natural-gray");
  const order = () => Array.from(table.tBodies[0].rows).map(cells);
  header.click();
  const ascending = {rows: order(), sort: header.getAttribute("aria-sort")};
  header.click();
  const descending = {rows: order(), sort: header.getAttribute("aria-sort")};
  const result = {
    header: cells(table.tHead.rows[0]), ascending, descending,
    tables: Array.from(document.querySelectorAll("table")).map(t => ({rows: t.tBodies[0].rows.length,
                                                                      height: t.offsetHeight})),
    images: Array.from(document.images).map(i => ({src: i.getAttribute("src"), loaded: i.complete && i.naturalWidth > 0,
                                                  width: i.offsetWidth})),
  };
  const out = document.createElement("pre");
  out.id = "selftest";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def sorted_within_metric(rows: list[list[str]], column: int, descending: bool) -> bool:
    """Whether rows (method, metric, fields...) are grouped by metric and sorted by `column` within each."""
    metrics = list(dict.fromkeys(row[1] for row in rows))
    grouped = [row[1] for row in rows] == [m for m in metrics for row in rows if row[1] == m]
    keys = {metric: [float(re.match(r"[-+]?\d+(\.\d+)?", row[column])[0]) for row in rows if row[1] == metric]
            for metric in metrics}
    return grouped and all(k == sorted(k, reverse=descending) for k in keys.values())


@pytest.mark.browser
@pytest.mark.skipif(browser() is None, reason="no headless Chromium here: `make test-browser` installs Debian's chromium")
def test_the_page_renders_every_table_and_image_and_sorts_in_chromium(results, tmp_path):
    report = results / "smoke" / "partial"
    page = (report / "index.html").read_text()
    probe = report / "index-selftest.html"  # beside the page: the same relative image links
    probe.write_text(page.replace("</body>", SELFTEST + "</body>"))
    start = time.perf_counter()
    dom = dump_dom(probe)
    probe.unlink()
    result = json.loads(html.unescape(re.search(r'<pre id="selftest">(.*?)</pre>', dom, re.S)[1]))
    assert len(result["tables"]) == page.count("<table") and all(t["rows"] > 0 and t["height"] > 0 for t in result["tables"])
    assert {image["src"] for image in result["images"]} == {p.name for p in report.glob("*.png")}
    assert all(image["loaded"] and image["width"] > 0 for image in result["images"]), result["images"]
    column = result["header"].index("natural-gray")
    assert result["ascending"]["sort"] == "ascending" and result["descending"]["sort"] == "descending"
    assert sorted_within_metric(result["ascending"]["rows"], column, descending=False)
    assert sorted_within_metric(result["descending"]["rows"], column, descending=True)
    assert result["ascending"]["rows"] != result["descending"]["rows"]
    picture = screenshot(report / "index.html", tmp_path / "index.png")
    print(f"screenshot: {picture} ({time.perf_counter() - start:.1f}s in the browser)")
    image = Image.open(picture)
    assert image.size == (1400, 2000) and len(image.getcolors(1 << 20)) > 50  # drawn, not blank
