"""The Streamlit app's logic, without streamlit: ``state`` (typed state and the URL schema),
``inputs`` (specs from the custom fields and from uploaded files), ``compute`` (the page
computations as plain functions returning dataclasses). ``app.py`` at the repository root lays
out the pages and caches these functions; everything here is testable without streamlit."""
