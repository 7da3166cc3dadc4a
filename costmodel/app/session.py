"""The session's state and the URL: read from the query parameters on a session's first run,
kept for widgets not drawn this run, written back after every run (only the values that differ
from the defaults), so a configuration is shared by copying the address bar."""

from __future__ import annotations

import streamlit as st

from costmodel.app import state
from costmodel.app.state import CUSTOM, FIELDS
from costmodel.app.widgets import ss


def init_state() -> None:
    """First run of a session: read the URL. Later runs: keep hidden widgets' values."""
    if "_init" not in ss:
        values, warnings = state.parse_query_params(st.query_params.to_dict())
        for key, value in values.items():
            ss[key] = value
        ss["_init"], ss["_url_warnings"] = True, warnings
        ss["_last_model"], ss["_last_hw"] = state.DEFAULT_MODEL, state.DEFAULT_HARDWARE
        ss["_custom_model_touched"] = ss["model"] == CUSTOM
        ss["_custom_hw_touched"] = ss["hw"] == CUSTOM
    else:
        for key in FIELDS:         # a widget not drawn this run would otherwise lose its value
            if key in ss:
                ss[key] = ss[key]


def sync_url() -> None:
    """Write the non-default values into the URL (only when they changed)."""
    wanted = state.encode_query_params({k: ss[k] for k in FIELDS if k in ss})
    if wanted != st.query_params.to_dict():
        st.query_params.from_dict(wanted)


__all__ = ["init_state", "sync_url"]
