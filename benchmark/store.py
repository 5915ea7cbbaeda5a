"""The results store: one JSON file per finished cell, written atomically, read back to skip or report."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


# Version of the result layout; a stored result of another version counts as not finished (rerun).
FORMAT = 2


class ResultStore:
    """Files <root>/<cell id>.json. A file exists only once its cell has finished: it is written to a
    temporary name in the same folder, flushed to disk and renamed over the final name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, cell_id: str) -> Path:
        return self.root / f"{cell_id}.json"

    def load(self, cell_id: str) -> dict[str, Any] | None:
        """The stored result of a cell, or None if it has not finished (or was stored in an older format)."""
        try:
            result = json.loads(self.path(cell_id).read_text())
        except FileNotFoundError:
            return None
        return result if result.get("format") == FORMAT else None

    def has(self, cell_id: str) -> bool:
        return self.load(cell_id) is not None

    def write(self, result: dict[str, Any]) -> Path:
        """Store a finished cell's result atomically (readers see the old state or the whole new file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        result = {**result, "format": FORMAT}
        target = self.path(result["id"])
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
