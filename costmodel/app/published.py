"""The Validation page's GPU half: the committed output of ``costmodel validate --published``
(``data/validation/published``) read into tables and the scatter PNG, without streamlit.

    res = published_results()
    res.tables["headline"]      # check, result, target, met
    res.figure                  # PNG bytes of predicted vs measured, or None
    res.problems                # files that exist but cannot be read (named)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from costmodel.lazy import deferred
from costmodel.validation.published_report import FIGURE_FILE, REPORT_FILE, TABLE_FILES

pd = deferred("pandas")

#: The committed output of ``costmodel validate --published``.
PUBLISHED_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "validation" / \
    "published"
#: The tables the page shows, in order, with their titles.
PAGE_TABLES = {
    "headline": "Headline (leave-one-source-out)",
    "errors": "|relative error| by regime: ideal roofline, default and fitted profiles, "
              "leave one source out",
    "subsets": "Quantized and TP ≥ 2 rows against the same budgets",
    "sources": "Leave one source out, by held-out source",
    "profiles": "Fitted engine profiles (costmodel/data/engines.csv)",
    "bands": "80 % bands (costmodel/data/engine_bands.csv)",
    "points": "Every measurement: measured and predicted",
}


@dataclass
class PublishedResults:
    """The GPU validation as the page shows it: tables by key (see :data:`PAGE_TABLES`), the
    scatter PNG, the report's file name, and the files that could not be read."""

    tables: dict = field(default_factory=dict)
    figure: bytes | None = None
    report: Path | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.tables and self.figure is None


def published_results(folder: Path = PUBLISHED_DIR) -> PublishedResults:
    """Read what ``costmodel validate --published`` wrote into ``folder``: every table that
    exists and parses (one that does not is named in ``problems``), the PNG, the report."""
    out = PublishedResults()
    if not folder.is_dir():
        return out
    for key in PAGE_TABLES:
        path = folder / TABLE_FILES[key]
        if not path.is_file():
            continue
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                OSError) as e:
            out.problems.append(f"{path.name}: cannot be read ({type(e).__name__})")
            continue
        out.tables[key] = df
    png = folder / FIGURE_FILE
    if png.is_file():
        try:
            data = png.read_bytes()
        except OSError:
            out.problems.append(f"{png.name}: cannot be read")
        else:
            if data.startswith(b"\x89PNG"):
                out.figure = data
            else:
                out.problems.append(f"{png.name}: not a PNG file")
    report = folder / REPORT_FILE
    out.report = report if report.is_file() else None
    return out


__all__ = ["PAGE_TABLES", "PUBLISHED_DIR", "PublishedResults", "published_results"]
