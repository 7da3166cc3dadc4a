"""The Validation page: the committed predictions vs published GPU measurements
(``costmodel validate --published``), vs the PyTorch reference model (``costmodel validate``),
and the raw measurements under data/measurements — or how to make them, where there are none."""

from __future__ import annotations

import streamlit as st

from costmodel.app import compute_validation
from costmodel.app.display import slug
from costmodel.app.published import PAGE_TABLES, published_results
from costmodel.app.sidebar import Sidebar
from costmodel.app.widgets import WARN, figure, guarded, table


def page(side: Sidebar) -> None:
    gpu = published_results()
    st.subheader("Predictions vs published GPU measurements")
    for problem in gpu.problems:
        st.warning(f"data/validation/published/{problem}", icon=WARN)
    if gpu.empty:
        st.info("No GPU validation yet: run `costmodel validate --published --save-engines` "
                "and commit data/validation/published to show it here.")
    else:
        st.caption("From the committed `costmodel validate --published` output under "
                   "data/validation/published (see published_report.md there): public GPU "
                   "measurements (data/published/measurements.csv) priced with the ideal "
                   "roofline, the default and the fitted engine profiles; the targets are "
                   "judged leave-one-source-out (each source priced by profiles fitted on "
                   "the others), the 80 % bands on the same held-out predictions.")
        if "headline" in gpu.tables:
            table(gpu.tables["headline"], "published_headline")
        if gpu.figure is not None:
            st.markdown("**Predicted vs measured, by engine class (log–log)**")
            figure(gpu.figure, "published_predicted_vs_measured")
        for key, title in PAGE_TABLES.items():
            if key != "headline" and key in gpu.tables:
                with st.expander(title, expanded=key in ("errors", "subsets")):
                    table(gpu.tables[key], f"published_{key}")
    res = compute_validation.validation_results()
    for problem in res.problems:
        st.warning(f"data/validation/{problem}", icon=WARN)
    tables = res.tables
    if tables or res.figures:
        st.subheader("Predictions vs the PyTorch reference model")
        st.caption("From the committed `costmodel validate` output under data/validation "
                   "(see validation_report.md there): the exact checks, the held-out latency "
                   "error of the calibrated roofline and of the ideal one, and speculative "
                   "decoding.")
        if "headline" in tables:
            table(tables["headline"], "validation_headline")
        if "errors" in tables:
            st.markdown("**|relative error| by regime** (held-out points; ideal = the "
                        "roofline on the calibrated peaks, calibrated = with the fitted "
                        "efficiencies and per-kernel overhead)")
            table(tables["errors"], "validation_errors_by_regime")
        for title, data in res.figures.items():
            st.markdown(f"**{title}**")
            figure(data, slug("validation", title))
        if "points" in tables:
            st.markdown("**Points** (measured and predicted seconds per pass)")
            table(tables["points"], "validation_points")
        if "speculative" in tables:
            st.markdown("**Speculative decoding** (measured vs predicted improvement per γ)")
            table(tables["speculative"], "validation_speculative")
    else:
        st.info("No validation results yet: run `costmodel validate --measurements "
                "data/measurements/cpu.csv --hardware data/hardware/cpu.json --out "
                "data/validation` and commit data/validation to show them here.")
    guarded(_measurements)


def _measurements() -> None:
    files = compute_validation.measurement_files()
    if not files:
        st.info(
            "No measurements yet: this page compares predictions with measurements committed "
            "under `data/measurements/`. To create them on a machine with PyTorch:\n\n"
            "1. `costmodel calibrate` — measure this machine's FLOP/s, bandwidth and "
            "per-kernel overhead;\n"
            "2. `costmodel measure` — time the bundled reference model (writes CSV files under "
            "`data/measurements/`);\n"
            "3. `costmodel validate` — put the predictions beside the measurements.\n\n"
            "Commit the CSV files and this page shows them.")
        return
    st.subheader("Raw measurements")
    rel = {str(p.relative_to(compute_validation.MEASUREMENTS_DIR)): p for p in files}
    choice = st.selectbox("Measurement file", list(rel))
    df = compute_validation.read_table(rel[choice])
    st.caption(f"{len(df):,} rows, {len(df.columns)} columns from data/measurements/{choice}. "
               "`costmodel validate` puts the predictions beside these measurements.")
    first = [c for c in ("point_id", "model", "phase", "batch", "context", "time_s",
                         "predicted_s", "measured_s", "error") if c in df.columns]
    table(df, slug("measurements", choice.removesuffix(".csv")),
          column_order=first + [c for c in df.columns if c not in first])


__all__ = ["page"]
