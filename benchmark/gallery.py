"""Galleries: for each column of a table, the stored crops (datamodules.crops) of its first test images as
one picture, gallery_<table>_<column>.png: a row per crop (a volume: its central slice and its maximum
projection), clean | noisy | each method in the table's row order, each panel headed by the whole
image's PSNR (and SSIM, where the record has it). A method whose record has no stored crops (written
before crops were kept) shows its panel as "not stored"; one without a finished record as "no result".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import font_manager
from PIL import Image, ImageDraw, ImageFont

from benchmark.report import table_columns
from benchmark.spec import Cell, TableSpec
from benchmark.store import DoneRecord, ResultStore
from datamodules.crops import ImageCrop

PANEL = 160  # a panel's least side in pixels: a crop is scaled up by a whole factor (nearest neighbour)
GAP = 8  # pixels between panels
LABEL_WIDTH = 130  # the column of row labels on the left
HEADING = 34  # the lines above each panel: its name and its scores
FONT_SIZE = 13
LINE = FONT_SIZE + 4  # pixels from one line of text to the next
BACKGROUND, INK, MISSING = (255, 255, 255), (20, 20, 20), (225, 225, 225)


@dataclass(frozen=True)
class Panel:
    """One picture of a gallery row: its name and scores, and its uint8 (h, w) or (h, w, 3) pixels; None
    where there is no crop (`scores` then says why)."""

    name: str
    scores: str
    pixels: np.ndarray | None


@dataclass(frozen=True)
class GalleryRow:
    """One crop of one test image (one view of it): its label lines and its panels, clean and noisy first."""

    label: tuple[str, str]
    panels: list[Panel]


@dataclass(frozen=True)
class Layout:
    """Where a gallery's panels are: `side` x `side` pixels each, a crop scaled up `scale` times, below a
    caption `caption` pixels high."""

    side: int
    scale: int
    caption: int

    def box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the pixels of panel `column` (0: clean) of gallery row `row`."""
        left = LABEL_WIDTH + GAP + column * (self.side + GAP)
        top = self.caption + row * (HEADING + self.side + GAP) + HEADING
        return left, top, left + self.side, top + self.side


def gallery_path(results_dir: Path, table: str, column: str) -> Path:
    """results/gallery_<table>_<column>.png, the column label made safe for a file name."""
    return results_dir / f"gallery_{table}_{re.sub(r'[^A-Za-z0-9.-]+', '_', column)}.png"


def scores_text(record: DoneRecord, test_set: str, image: str) -> str:
    """'PSNR dB / SSIM' of one image of a record (PSNR alone where SSIM was not kept)."""
    scores = record.tests[test_set]
    text = f"{scores.psnr[image]:.2f} dB"
    return text + (f" / {scores.ssim[image]:.3f}" if scores.ssim and image in scores.ssim else "")


def column_rows(cells: list[Cell], store: ResultStore, test_set: str) -> list[GalleryRow]:
    """The gallery rows of one column, given its applicable cells in the table's row order (one per row
    label: the first with stored crops); none where no cell has crops of `test_set`."""
    shown: dict[str, tuple[DoneRecord | None, dict[str, ImageCrop]]] = {}
    for cell in cells:
        record = store.load(cell.id)
        crops = {crop.image: crop for crop in store.crops(cell.id).get(test_set, [])} if record else {}
        if cell.row not in shown or (crops and not shown[cell.row][1]):
            shown[cell.row] = (record, crops)
    reference = next((crops for _, crops in shown.values() if crops), None)
    if reference is None:
        return []
    rows = []
    for image, crop in reference.items():
        for view, name in enumerate(crop.views):
            where = f"at ({crop.corner[0]}, {crop.corner[1]})" if len(crop.views) == 1 else name
            panels = [Panel("clean", "", crop.clean[view]), Panel("noisy", f"{crop.noisy_psnr:.2f} dB", crop.noisy[view])]
            for label, (record, crops) in shown.items():
                own = crops.get(image)
                panels.append(Panel(label, scores_text(record, test_set, image), own.prediction[view]) if own and record
                              else Panel(label, "not stored" if record else "no result", None))
            rows.append(GalleryRow((image, where), panels))
    return rows


def font() -> ImageFont.FreeTypeFont:
    """DejaVu Sans, the font matplotlib ships, at FONT_SIZE."""
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), FONT_SIZE)


def fitted(text: str, width: int, face: ImageFont.FreeTypeFont) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    while text and face.getlength(text) > width:
        text = text[:-2] + "…" if len(text) > 1 else ""
    return text


def wrapped(text: str, width: int, face: ImageFont.FreeTypeFont) -> list[str]:
    """`text` broken into lines of at most `width` pixels, at spaces."""
    lines = [""]
    for word in text.split():
        joined = f"{lines[-1]} {word}".strip()
        if face.getlength(joined) <= width or not lines[-1]:
            lines[-1] = joined
        else:
            lines.append(word)
    return lines


def draw_gallery(rows: list[GalleryRow], caption: str, path: Path) -> Layout:
    """Draw the rows under the caption as one PNG and return where its panels are."""
    crop_side = max(max(p.pixels.shape[:2]) for row in rows for p in row.panels if p.pixels is not None)
    scale = max(1, -(-PANEL // crop_side))  # ceil: a panel wide enough for its heading
    width = LABEL_WIDTH + GAP + len(rows[0].panels) * (crop_side * scale + GAP)
    face = font()
    caption_lines = wrapped(caption, width - 2 * GAP, face)
    layout = Layout(crop_side * scale, scale, GAP + LINE * len(caption_lines) + GAP)
    canvas = Image.new("RGB", (width, layout.caption + len(rows) * (HEADING + layout.side + GAP)), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, GAP), "\n".join(caption_lines), fill=INK, font=face, spacing=LINE - FONT_SIZE)
    for r, row in enumerate(rows):
        top = layout.box(r, 0)[1]
        for line, text in enumerate(row.label):
            draw.text((GAP, top + line * LINE), fitted(text, LABEL_WIDTH - GAP, face), fill=INK, font=face)
        for c, panel in enumerate(row.panels):
            left, top, right, bottom = layout.box(r, c)
            heading = (panel.name, panel.scores if panel.pixels is not None else "")
            for line, text in enumerate(heading):
                draw.text((left, top - HEADING + line * (FONT_SIZE + 3)), fitted(text, layout.side, face), fill=INK,
                          font=face)
            if panel.pixels is None:
                draw.rectangle((left, top, right - 1, bottom - 1), fill=MISSING)
                draw.text(((left + right) // 2, (top + bottom) // 2), panel.scores, fill=INK, font=face, anchor="mm")
            else:
                picture = Image.fromarray(panel.pixels).convert("RGB")
                canvas.paste(picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST), (left, top))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)
    return layout


def write_galleries(spec: TableSpec, cells: list[Cell], store: ResultStore, results_dir: Path) -> dict[Path, Layout]:
    """One gallery per column of the table whose cells have stored crops; returns the files written and
    where their panels are."""
    order = {row.label: i for i, row in enumerate(spec.rows)}
    by_column: dict[tuple[str, str], list[Cell]] = {}
    for cell in sorted((c for c in cells if not c.not_applicable), key=lambda c: (order.get(c.row, len(order)), c.seed)):
        for test_set, label in table_columns(cell):
            by_column.setdefault((label, test_set), []).append(cell)
    written = {}
    for (label, test_set), column_cells in by_column.items():
        rows = column_rows(column_cells, store, test_set)
        if rows:
            caption = (f"{spec.title}, {label}: crops of the first test images, each method's prediction as scored "
                       "(after the protocol's transform); PSNR in dB / SSIM of the whole image")
            path = gallery_path(results_dir, spec.name, label)
            written[path] = draw_gallery(rows, caption, path)
    return written
