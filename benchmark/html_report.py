"""One page for a results folder, <results>/index.html: every report in it (each Markdown file rendered:
its table, the paper's numbers, footnotes, notes and datasets; every table sortable by a click on a
header), each table's forest plot and galleries beside it, the other figures, and what computed the
stored cells (package versions, device, git commit). Self-contained: its style and script are inline,
the images are the files beside it, linked by relative paths.

`python -m benchmark.html_report INDEX PNG` takes a screenshot of a page with headless Chromium.
"""

from __future__ import annotations

import argparse
import html
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

from benchmark.store import DoneRecord, ResultStore

INDEX = "index.html"
LEAD = "table3"  # the suite's headline table (the paper's Table 3) opens the page; other reports follow by name
SCREENSHOT = "index.png"  # the page's picture (README): never shown on the page itself
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")  # GitHub's tables; raw HTML shown as text

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5rem 3rem; color: #1b1b1b; line-height: 1.45; }
nav { margin: 1rem 0; padding: .6rem 1rem; background: #f4f6f8; border-radius: 6px; }
nav a { margin-right: 1.2rem; }
section { border-top: 1px solid #d0d7de; margin-top: 2rem; }
section h1 { font-size: 1.35rem; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; margin: .6rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f6f8; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption, .files { font-size: .85rem; color: #57606a; }
code { background: #f4f6f8; padding: 0 .2rem; border-radius: 3px; }
"""

# Click a header to sort its table by that column (again: the other way). A field sorts by the number it
# starts with (bold, a CI or the paper's delta after it do not count); fields without one (n/a, -, empty)
# go last either way; a column without numbers sorts as text. In a table with a `metric` column (PSNR and
# SSIM rows) the rows stay grouped by metric, in the order the metrics came, and sort within their group.
SCRIPT = """
function sortKey(cell) {
  const match = cell.textContent.trim().match(/^[-+]?\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?/i);
  return match ? parseFloat(match[0]) : null;
}
function compareBy(column, numeric, descending) {
  return (a, b) => {
    if (!numeric) {
      const order = a.cells[column].textContent.localeCompare(b.cells[column].textContent);
      return descending ? -order : order;
    }
    const x = sortKey(a.cells[column]), y = sortKey(b.cells[column]);
    if (x === null || y === null) return (x === null) - (y === null);
    return descending ? y - x : x - y;
  };
}
function sortBy(header) {
  const table = header.closest("table"), body = table.tBodies[0], column = header.cellIndex;
  const descending = header.getAttribute("aria-sort") === "ascending";
  const rows = Array.from(body.rows), numeric = rows.some(row => sortKey(row.cells[column]) !== null);
  const metric = Array.from(header.parentNode.cells).findIndex(th => th.textContent.trim() === "metric");
  const groups = metric < 0 || metric === column ? [] : [...new Set(rows.map(row => row.cells[metric].textContent))];
  const group = row => groups.indexOf(row.cells[metric].textContent);
  const within = compareBy(column, numeric, descending);
  rows.sort((a, b) => (groups.length ? group(a) - group(b) : 0) || within(a, b));
  rows.forEach(row => body.appendChild(row));
  table.querySelectorAll("th").forEach(th => th.removeAttribute("aria-sort"));
  header.setAttribute("aria-sort", descending ? "descending" : "ascending");
}
document.querySelectorAll("table thead th").forEach(th => {
  th.title = "sort by this column";
  th.addEventListener("click", () => sortBy(th));
});
"""


@dataclass(frozen=True)
class Section:
    """A part of the page: its anchor, its title in the contents (HTML), and its HTML."""

    anchor: str
    title: str
    body: str


def markdown_html(text: str) -> str:
    """A report's Markdown as HTML, each table in a scrolling box."""
    rendered = MARKDOWN.render(text)
    return rendered.replace("<table>", '<div class="wide"><table>').replace("</table>", "</table></div>")


def figure(path: Path, caption: str) -> str:
    """An image beside the page, linked to itself at full size."""
    name = html.escape(path.name)
    return (f'<figure><a href="{name}"><img src="{name}" alt="{html.escape(caption)}"></a>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def data_links(results_dir: Path, stem: str) -> str:
    """Links to the data files of a report or figure (its .csv, .json), where present."""
    files = [results_dir / f"{stem}{suffix}" for suffix in (".csv", ".json")]
    links = [f'<a href="{html.escape(f.name)}">{html.escape(f.name)}</a>' for f in files if f.is_file()]
    return f'<p class="files">Data: {", ".join(links)}</p>' if links else ""


def report_sections(results_dir: Path) -> tuple[list[Section], set[Path]]:
    """One section per Markdown report of the folder (LEAD's first, then the other tables, then the rest,
    by name), with its forest plot and galleries; and the images they show."""
    shown: set[Path] = set()
    sections = []
    for page in sorted(results_dir.glob("*.md"), key=lambda p: (not p.stem.startswith(LEAD),
                                                                 not p.stem.startswith("table"), p.stem)):
        images = [results_dir / f"{page.stem}.png", *sorted(results_dir.glob(f"gallery_{page.stem}_*.png"))]
        images = [image for image in images if image.is_file()]
        shown.update(images)
        figures = [figure(image, "Forest plot: each method's mean with its 95% interval over test images"
                          if image.stem == page.stem else
                          f"Gallery, {image.stem.removeprefix(f'gallery_{page.stem}_')}: clean | noisy | each method")
                   for image in images]
        text = page.read_text()
        title = MARKDOWN.renderInline(text.splitlines()[0].lstrip("# ").strip() if text else page.stem)
        sections.append(Section(page.stem, title, markdown_html(text) + data_links(results_dir, page.stem)
                                + "".join(figures)))
    return sections, shown


def figure_sections(results_dir: Path, shown: set[Path]) -> list[Section]:
    """One section per image of the folder that no report showed (the paper's figures), with its data."""
    return [Section(image.stem, html.escape(image.stem), f"<h1>{html.escape(image.stem)}</h1>" + figure(image, image.name)
                    + data_links(results_dir, image.stem))
            for image in sorted(results_dir.glob("*.png")) if image not in shown and image.name != SCREENSHOT]


def environment_table(records: list[DoneRecord]) -> pd.DataFrame:
    """What computed the records: one column per distinct device, CPU, threads, Python and package
    versions (one row each), with its number of cells, their tables and their git commits (each with its
    count of cells)."""
    rows = [{"device": r.device, "CPU": r.cpu_model or "", "CPU capability": r.cpu_capability or "",
             "torch threads": "" if r.torch_threads is None else str(r.torch_threads), "Python": r.python,
             **{package: version or "-" for package, version in r.versions.items()},
             "table": r.table, "git": (r.git_sha or "unknown")[:10]} for r in records]
    frame = pd.DataFrame(rows).fillna("")
    keys = [column for column in frame.columns if column not in ("table", "git")]
    return frame.groupby(keys, sort=False).agg(
        cells=("table", "size"), tables=("table", lambda tables: ", ".join(sorted(set(tables)))),
        commits=("git", lambda shas: ", ".join(f"{sha} ({n})" for sha, n in shas.value_counts().items())),
    ).reset_index().T.rename(columns=lambda i: f"environment {i + 1}")


def environment_section(store: ResultStore, preset: str, tables: set[str]) -> Section:
    """The environment of the stored cells of the page's tables under `preset`."""
    records = [record for cell_id in store.cell_ids() if (record := store.load(cell_id)) is not None
               and record.preset == preset and record.table in tables]
    body = "<h1>Environment</h1>"
    if not records:
        return Section("environment", "Environment", body + f"<p>No finished cell of preset {html.escape(preset)} "
                       "is stored for these tables.</p>")
    frame = environment_table(records)
    body += (f"<p>What computed the {len(records)} stored cells of preset <code>{html.escape(preset)}</code> behind "
             "this page (from each cell's record): one column per distinct machine and software; commits with their "
             "number of cells.</p>" + '<div class="wide">' + frame.to_html(border=0) + "</div>")
    return Section("environment", "Environment", body)


def write_index(results_dir: Path, store: ResultStore, preset: str) -> Path:
    """Write <results_dir>/index.html from the reports and images in the folder and the store's records."""
    reports, shown = report_sections(results_dir)
    sections = [*reports, *figure_sections(results_dir, shown)]
    sections.append(environment_section(store, preset, {section.anchor for section in sections}))
    contents = "".join(f'<a href="#{html.escape(s.anchor)}">{s.title}</a>' for s in sections)
    title = f"noise2same-bench results, preset {preset}"
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>\n'
            f"<body><h1>{html.escape(title)}</h1><nav>{contents}</nav>\n"
            + "\n".join(f'<section id="{html.escape(s.anchor)}">{s.body}</section>' for s in sections)
            + f"\n<script>{SCRIPT}</script></body></html>\n")
    path = results_dir / INDEX
    path.write_text(page)
    return path


def browser() -> str | None:
    """The headless browser this machine has (Debian's chromium, or Chrome), or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def headless(page: Path, *options: str, timeout: float = 60) -> str:
    """Open a page in headless Chromium with `options` (after its scripts ran: a virtual time budget);
    its stdout. A missing browser or a failing run raises RuntimeError with one line."""
    executable = browser()
    if executable is None:
        raise RuntimeError(f"no headless browser found (one of {', '.join(BROWSERS)}); on Debian: "
                           "apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run([executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *options,
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{executable} failed on {page} (exit {done.returncode}): "
                           f"{(done.stderr.strip().splitlines() or [''])[-1]}")
    return done.stdout


def dump_dom(page: Path) -> str:
    """The page's DOM after its scripts ran, as HTML."""
    return headless(page, "--dump-dom")


def screenshot(page: Path, picture: Path, width: int = 1400, height: int = 2000) -> Path:
    """A PNG of the top `height` pixels of the page at `width` pixels."""
    headless(page, f"--window-size={width},{height}", f"--screenshot={picture.resolve()}")
    if not picture.is_file():
        raise RuntimeError(f"the browser wrote no screenshot to {picture}")
    return picture


def main(argv: list[str] | None = None) -> int:
    """Take a screenshot of an index.html (the README's picture); one line on stderr and exit 1 if it fails."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.html_report", description=main.__doc__)
    parser.add_argument("page", type=Path, help="the page, e.g. results/index.html")
    parser.add_argument("picture", type=Path, help="the PNG to write, e.g. results/index.png")
    args = parser.parse_args(argv)
    if not args.page.is_file():
        print(f"error: {args.page} does not exist; `make report` writes it", file=sys.stderr)
        return 1
    try:
        print(f"wrote {screenshot(args.page, args.picture)}")
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
