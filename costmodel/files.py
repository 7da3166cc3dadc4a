"""Files: JSON read with size and nesting limits, atomic writes, and output sets written
all-or-nothing.

A command that writes several files stages them in a hidden folder beside their destination and
renames them into place only when every one was written: on failure nothing the user had changes,
and the error names the user's path, never the staging file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: JSON inputs larger than this are refused before parsing.
MAX_JSON_BYTES = 16 * 2**20
#: Deeper nesting than this is refused before parsing (the parser would recurse).
MAX_JSON_DEPTH = 64


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting of a JSON text, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json(data: bytes | str, what: str) -> Any:
    """Parse JSON text with the limits above; ``ValueError`` naming ``what`` on any problem."""
    if isinstance(data, bytes):
        if len(data) > MAX_JSON_BYTES:
            raise ValueError(f"{what}: the file is {len(data):,} bytes; at most "
                             f"{MAX_JSON_BYTES:,} are read")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what}: not valid JSON (the file is not UTF-8 text)") from None
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what}: the text is {len(data):,} characters; at most "
                         f"{MAX_JSON_BYTES:,} are read")
    if _nesting_depth(data) > MAX_JSON_DEPTH:
        raise ValueError(f"{what}: not valid JSON for this purpose (brackets nested deeper "
                         f"than {MAX_JSON_DEPTH} levels)")
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: not valid JSON ({e.msg}, line {e.lineno}, column "
                         f"{e.colno})") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError(f"{what}: not valid JSON (nested too deeply)") from None


def read_limited(path: Path, label: str, kind: str, limit: int) -> bytes:
    """The bytes of the ``kind`` file ``path`` (at most ``limit`` of them); ValueError starting
    with ``label`` when it is missing, a folder, too large or unreadable."""
    if not path.exists():
        raise ValueError(f"{label} does not exist")
    if path.is_dir():
        raise ValueError(f"{label} is a folder, not a {kind} file")
    try:
        size = path.stat().st_size
        if size > limit:
            raise ValueError(f"{label}: the file is {size:,} bytes; at most {limit:,} are read")
        return path.read_bytes()
    except OSError as e:
        raise ValueError(f"{label}: cannot be read ({e.strerror or e})") from None


def read_json(path: str | Path, what: str) -> Any:
    """Read and parse a JSON file (see :func:`parse_json`); the errors name the file."""
    label = f"{what} {Path(path)}"
    return parse_json(read_limited(Path(path), label, "JSON", MAX_JSON_BYTES), label)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_destination(path: Path) -> None:
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{path}: {parent} is not a folder")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename: a reader
    never sees a half-written file, and a failure leaves the old file in place. The file gets
    the usual permissions (0666 less the umask). Errors name ``path``."""
    with OutputSet() as out:
        out.write_bytes(path, data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())


class OutputSet:
    """Several output files written all-or-nothing.

        with OutputSet() as out:
            out.write_text(report_path, text)
            out.write_bytes(png_path, png)
        # every file is in place here; if anything raised, none was touched

    Each write goes to a staging folder beside the destination (same file system, so the final
    rename is atomic per file); leaving the ``with`` block without an exception renames them
    all into place, with an exception removes the staging folders.
    """

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}
        self._stages: dict[Path, Path] = {}

    def _stage_dir(self, dest: Path) -> Path:
        anchor = dest.parent
        while not anchor.exists():
            anchor = anchor.parent
        if anchor not in self._stages:
            try:
                self._stages[anchor] = Path(tempfile.mkdtemp(prefix=".costmodel-staging-",
                                                             dir=anchor))
            except OSError as e:
                raise ValueError(f"{dest}: cannot write in {anchor} ({e.strerror or e})") \
                    from None
        return self._stages[anchor]

    def write_bytes(self, path: str | Path, data: bytes) -> Path:
        dest = Path(path)
        _check_destination(dest)
        staged = self._stage_dir(dest) / f"{len(self._staged)}-{dest.name}"
        try:
            staged.write_bytes(data)
            os.chmod(staged, 0o666 & ~_umask())
        except OSError as e:
            raise ValueError(f"{dest}: cannot be written ({e.strerror or e})") from None
        self._staged[dest] = staged
        return dest

    def write_text(self, path: str | Path, text: str) -> Path:
        return self.write_bytes(path, text.encode())

    @property
    def paths(self) -> list[Path]:
        return list(self._staged)

    def commit(self) -> None:
        try:
            for dest, staged in self._staged.items():
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staged, dest)
                except OSError as e:
                    raise ValueError(f"{dest}: cannot be written ({e.strerror or e})") from None
        finally:
            self.discard()

    def discard(self) -> None:
        for stage in self._stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        self._stages.clear()
        self._staged.clear()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "OutputSet", "atomic_write_bytes",
           "atomic_write_text", "parse_json", "read_json"]
