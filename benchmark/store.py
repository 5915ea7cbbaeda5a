"""The results store: one JSON file per finished or failed cell, written atomically, read back to skip or report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


# Version of the result layout; a stored result of another version counts as not finished (rerun).
# Failed records (status "failed") joined format 2 without a bump: finished results keep their layout.
FORMAT = 2


class ResultStore:
    """Files <root>/<cell id>.json, one per cell that finished (its result) or failed (status "failed",
    the reason and the traceback's tail). A file is written to a temporary name in the same folder,
    flushed to disk and renamed over the final name, so readers, and writers running at the same time,
    only ever see whole files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, cell_id: str) -> Path:
        return self.root / f"{cell_id}.json"

    def record(self, cell_id: str) -> dict[str, Any] | None:
        """The stored record of a cell, finished or failed; None if there is none (or only one in an older format)."""
        try:
            record = json.loads(self.path(cell_id).read_text())
        except FileNotFoundError:
            return None
        return record if record.get("format") == FORMAT else None

    def load(self, cell_id: str) -> dict[str, Any] | None:
        """The stored result of a cell, or None if it has not finished (not run, failed, or stored in an older format)."""
        record = self.record(cell_id)
        return None if record is None or record.get("status") == "failed" else record

    def failure(self, cell_id: str) -> str | None:
        """Why a cell failed (one line), or None if it has no failed record."""
        record = self.record(cell_id)
        return record["error"] if record is not None and record.get("status") == "failed" else None

    def has(self, cell_id: str, retry_failed: bool = False) -> bool:
        """Whether the cell needs no run: it finished, or it failed and failures are not being retried."""
        record = self.record(cell_id)
        return record is not None and not (retry_failed and record.get("status") == "failed")

    def write(self, result: dict[str, Any]) -> Path:
        """Store a cell's record atomically (readers see the old state or the whole new file); a failure
        never replaces a finished result (the same cell may have finished in another process)."""
        self.root.mkdir(parents=True, exist_ok=True)
        result = {**result, "format": FORMAT}
        target = self.path(result["id"])
        if result.get("status") == "failed" and self.load(result["id"]) is not None:
            return target
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{result['id']}.", suffix=".tmp")
        try:
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a result is for everyone to read
            with os.fdopen(handle, "w") as stream:
                json.dump(result, stream, indent=1)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target
