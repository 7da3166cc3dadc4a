"""The app's shared Streamlit pieces: guarded sections (an error becomes one ``st.error``, the
rest of the app keeps working), widget callbacks that cannot raise, cached computations, tables
and figures with their download buttons (alone or side by side), metrics with their captions,
uploaded files.

Only the layout (``app.py``, ``session``, ``pickers``, ``sidebar``, ``pages.*``) imports this
module; it needs the ``app`` extra (streamlit). The logic they lay out stays streamlit-free in
``state``, ``inputs``, ``compute``, ``display``, ``published`` and ``plan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from costmodel.app.display import display_frame, is_numeric_column

ss = st.session_state
NUM = st.column_config.NumberColumn
ERR, WARN, DL = ":material/error:", ":material/warning:", ":material/download:"


def cached(fn: Callable, max_entries: int = 64) -> Callable:
    """``fn`` cached across reruns and sessions by its (plain or dataclass) arguments."""
    return st.cache_data(fn, show_spinner=False, max_entries=max_entries)


def error_text(e: BaseException, limit: int = 300) -> str:
    """A ValueError's own message; anything else named as unexpected (cut to ``limit``)."""
    if isinstance(e, ValueError):
        return str(e)
    return f"unexpected error ({type(e).__name__}: {str(e)[:limit]})"


def show_error(e: BaseException, where: str = "") -> None:
    prefix = f"{where}: " if where else ""
    more = "" if isinstance(e, ValueError) else ". The other sections still work."
    st.error(f"{prefix}{error_text(e)}{more}", icon=ERR)


def guarded(body: Callable, *args: Any, where: str = "", **kwargs: Any) -> Any:
    """Run one section; its errors become st.error, never a traceback. Returns the section's
    result, None after an error."""
    try:
        return body(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 — no traceback reaches the page
        show_error(e, where)
        return None


def callback(fn: Callable) -> Callable:
    """A widget callback whose errors are shown on the next run instead of a traceback."""
    def run(*args: Any) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001
            ss["_callback_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return run


def uploaded(key: str) -> tuple[bytes, str] | None:
    """The bytes and name of the file in an uploader; None when there is none (or it was just
    removed: streamlit then holds a placeholder without content)."""
    up = ss.get(key)
    read = getattr(up, "getvalue", None)
    if read is None:
        return None
    return read(), str(getattr(up, "name", "") or "file.json")


def table(df, name: str, column_config: dict | None = None, **kw) -> None:
    """A table (made safe for the widget) with its CSV download button."""
    df = display_frame(df)
    config = {k: v for k, v in (column_config or {}).items()
              if is_numeric_column(df, k) or v.get("type_config", {}).get("type") != "number"}
    st.dataframe(df, hide_index=True, column_config=config, **kw)
    st.download_button("Download CSV", df.to_csv(index=False).encode(), f"{name}.csv",
                       "text/csv", key=f"csv_{name}", on_click="ignore", icon=DL)


def figure(data: bytes, name: str, width: Any = "stretch") -> None:
    """A figure (PNG bytes) with its PNG download button."""
    st.image(data, width=width)
    st.download_button("Download PNG", data, f"{name}.png", "image/png", key=f"png_{name}",
                       on_click="ignore", icon=DL)


def table_and_figure(df, png: bytes, name: str, column_config: dict) -> None:
    """A table on the left, its figure on the right (both named ``name``)."""
    left, right = st.columns([2, 3])
    with left:
        table(df, name, column_config)
    with right:
        figure(png, name)


def metric(where: Any, label: str, value: str, caption: str | None = None) -> None:
    """A metric in ``where`` (a column), with its caption below it."""
    where.metric(label, value)
    if caption is not None:
        where.caption(caption)


__all__ = ["DL", "ERR", "NUM", "WARN", "cached", "callback", "error_text", "figure", "guarded",
           "metric", "show_error", "ss", "table", "table_and_figure", "uploaded"]
