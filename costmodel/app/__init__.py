"""The Streamlit app. Its logic, without streamlit: ``state`` (typed state and the URL schema),
``inputs`` (specs from the custom fields and from uploaded files), ``compute`` (the page
computations as plain functions returning dataclasses), ``display`` (text and tables for
display), ``published`` and ``plan`` (the Validation and Plan pages' data) — all testable
without streamlit. Its layout, which imports streamlit and is imported by ``app.py`` (the entry
point at the repository root) alone: ``widgets`` (guarded sections, cached computations, tables
and figures with downloads), ``session`` (the URL ↔ session state), ``pickers`` and ``sidebar``
(what the pages compute from), ``pages`` (one module a page)."""
