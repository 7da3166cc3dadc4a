"""The app's pages, one module each, each a ``page(side)`` that lays the page out from what the
sidebar built (:class:`costmodel.app.sidebar.Sidebar`): ``memory``, ``roofline``,
``attention``, ``speculative``, ``formulas``, ``validation``, ``plan``. A page calls the
streamlit-free computations of ``costmodel.app.compute*`` (or ``published``, ``plan``), cached
by their arguments, and shows their tables (CSV download), figures (PNG download) and
formulas."""
