"""Responsiveness of the Streamlit app: median time of one rerun after a widget change, per page.

    .venv/bin/python benchmarks/app_rerun.py [--repeats 15] [--pages Memory Roofline]

Times ``at.run()`` of streamlit's AppTest after changing the context s (the script runs
in this process as the server would run it, without the browser round trip). Two cases:

- *fresh*: every change sets a value not seen before (s = 1000, 1001, ...): the cached
  analyses miss and everything on the page is recomputed, figures re-rendered;
- *cached*: the change alternates between two values already computed (st.cache_data hits).

And two ways of running the script:

- *AppTest*: as AppTest does it — AppTest builds a new script cache on every run, so app.py is
  parsed, magic-rewritten and compiled again each time (~100-150 ms here);
- *server*: one shared script cache, as `streamlit run` keeps one per process.

Not a test: it prints a table. Target: median ≤ 300 ms for Memory and Roofline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import AppTest, local_script_runner

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ("Memory", "Roofline", "Attention intensity", "Speculative decoding", "Formulas")


def timed_run(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return elapsed


def bench_page(page: str, repeats: int, start: int) -> dict[str, float]:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["page"] = page
    at.run()
    fresh = []
    for i in range(repeats):
        at.number_input(key="context").set_value(start + i)
        fresh.append(timed_run(at))
    cached = []
    for i in range(repeats):
        at.number_input(key="context").set_value(start + i % 2)
        cached.append(timed_run(at))
    return {"fresh": statistics.median(fresh), "cached": statistics.median(cached)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--pages", nargs="*", default=list(PAGES))
    args = parser.parse_args()
    results = {}
    original = local_script_runner.ScriptCache
    shared = ScriptCache()
    for mode in ("AppTest", "server"):
        local_script_runner.ScriptCache = original if mode == "AppTest" else (lambda: shared)
        for k, page in enumerate(args.pages):
            results[mode, page] = bench_page(page, args.repeats,
                                             start=1000 + 100 * k + 50 * (mode == "server"))
    local_script_runner.ScriptCache = original
    print(f"median rerun after changing the context s ({args.repeats} reruns each; ms)")
    print(f"{'page':<22} {'AppTest fresh':>14} {'AppTest cached':>15} {'server fresh':>13} "
          f"{'server cached':>14}")
    for page in args.pages:
        a, s = results["AppTest", page], results["server", page]
        print(f"{page:<22} {a['fresh'] * 1e3:>14.0f} {a['cached'] * 1e3:>15.0f} "
              f"{s['fresh'] * 1e3:>13.0f} {s['cached'] * 1e3:>14.0f}")


if __name__ == "__main__":
    main()
