"""The Validation page's data: the committed output of ``costmodel validate`` (data/validation:
tables and figures, each file checked before it is shown) and the measurement files
(data/measurements)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from costmodel.app.display import display_frame
from costmodel.lazy import deferred
from costmodel.units import MIB

pd = deferred("pandas")


ROOT = Path(__file__).resolve().parent.parent.parent
MEASUREMENTS_DIR = ROOT / "data" / "measurements"
VALIDATION_DIR = ROOT / "data" / "validation"
VALIDATION_TABLES = {"headline": "headline.csv", "errors": "errors_by_regime.csv",
                     "points": "points.csv", "speculative": "speculative.csv"}
VALIDATION_FIGURES = {"predicted_vs_measured.png": "Predicted vs measured (log–log, y = x)",
                      "latency_vs_context.png": "Latency vs context: KV cache vs no cache",
                      "speculative_speedup.png": "Speculative decoding: improvement vs γ"}
#: Files larger than this under data/ are not shown (a committed table or figure is far smaller).
MAX_DATA_FILE_BYTES = 32 * MIB
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ValidationResults:
    """The committed output of ``costmodel validate`` (data/validation): the tables found
    (headline, errors, points, speculative), the figures (title → PNG bytes), and one line per
    file that is there but cannot be shown."""

    tables: dict
    figures: dict
    problems: tuple[str, ...]


def read_table(path: Path):
    """A CSV file as a display frame; ValueError naming the file when it cannot be read."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_DATA_FILE_BYTES:
            raise ValueError(f"{name}: {size:,} bytes is too large to show")
        df = pd.read_csv(path)
    except ValueError as e:          # pandas' ParserError and EmptyDataError are ValueErrors
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else "unreadable"
        raise ValueError(f"{name}: not a readable CSV table ({text})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{name}: cannot be read ({type(e).__name__})") from None
    if df.columns.empty:
        raise ValueError(f"{name}: the file holds no columns")
    return display_frame(df)


def validation_results(folder: Path = VALIDATION_DIR) -> ValidationResults:
    tables, figures, problems = {}, {}, []
    if folder.is_dir():
        for key, name in VALIDATION_TABLES.items():
            path = folder / name
            if path.is_file():
                try:
                    tables[key] = read_table(path)
                except ValueError as e:
                    problems.append(str(e))
        for name, title in VALIDATION_FIGURES.items():
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = path.read_bytes() if path.stat().st_size <= MAX_DATA_FILE_BYTES else b""
            except OSError:
                data = b""
            if data.startswith(PNG_MAGIC):
                figures[title] = data
            else:
                problems.append(f"{name}: not a PNG image (or too large to show)")
    return ValidationResults(tables, figures, tuple(problems))


def measurement_files(folder: Path = MEASUREMENTS_DIR) -> list[Path]:
    """CSV files under data/measurements (empty when the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.csv") if p.is_file())


__all__ = ["MAX_DATA_FILE_BYTES", "MEASUREMENTS_DIR", "PNG_MAGIC", "VALIDATION_DIR",
           "VALIDATION_FIGURES", "VALIDATION_TABLES", "ValidationResults", "measurement_files",
           "read_table", "validation_results"]
