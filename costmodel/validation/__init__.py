"""Validation against measurements of the PyTorch reference model: calibrate the machine,
measure the reference model, check FLOPs and bytes exactly, fit the calibrated latency model,
predict speculative decoding, and report — one module each:

    io           the measurement and speculative CSV schema and their checked readers
    calibrate    the machine's matmul FLOP/s, copy bandwidth and per-op overhead
    grids        the measurement grids: their models and points
    passes       one measured pass of the reference model (and its FLOPs on the meta device)
    budget       the seconds a grid should take; the grid trimmed to a budget
    measure      the reference model over a grid
    measure_speculative  the reference model's speculative decoding
    checks       FLOPs (FlopCounterMode), KV-cache and parameter bytes, exactly
    fit          the calibrated model (typed efficiencies, priced by costmodel.pricing.price)
    speculative  measured vs predicted speculative improvement
    report       the markdown and figures, from the data only
    validate     the orchestration; every output file written or none
    published         the published GPU measurement set: its reader, each row priced
    profiles          engine profiles fitted to it, leave-one-source-out, the 80 % bands
    published_report  the GPU validation: assessment, report, figure, engines.csv
    kit               calibrate + measure + validate + report in one command (the GPU kit)

Import from the modules (``from costmodel.validation.fit import fit, predict``,
``from costmodel.validation.validate import validate``); they load on first use. Calibrating
and measuring need the ``torch`` extra; the rest needs it for the exact checks only.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The modules, loaded on first attribute access (``costmodel.validation.fit``), so that a
#: command line that only registers the validation commands does not import them.
MODULES = ("io", "calibrate", "grids", "passes", "budget", "measure", "measure_speculative",
           "checks", "fit", "speculative", "report", "validate",
           "published", "profiles", "published_report", "kit")


def __getattr__(name: str) -> ModuleType:
    if name in MODULES:
        return importlib.import_module(f"costmodel.validation.{name}")
    raise AttributeError(f"module 'costmodel.validation' has no attribute {name!r}")
