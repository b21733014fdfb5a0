"""The performance-watt benchmark (``phytoscope bench`` and the window's Benchmark page).

Modules, from the bottom up (import-linter checks this order and that none import in a
cycle; see pyproject.toml):

- :mod:`.config` — the variants, the study's phases, :class:`~.config.BenchConfig`;
- :mod:`.results` — the typed results (:class:`~.results.BenchResult` and its parts),
  read from and written to ``results.json`` through :mod:`.jsonable`;
- :mod:`.stats` — percentiles, warm-up stability, FPS/W, energy per image;
- :mod:`.table` — the one table model every front end renders;
- :mod:`.stages` — how a run reports progress through :class:`phytoscope.progress.Progress`;
- :mod:`.labelled`, :mod:`.machine` — the labelled images; machine facts and idle baseline;
- :mod:`.worker` — one variant in a fresh process; :mod:`.child` — the parent's side of it;
- :mod:`.metrics` — a variant's figures from its process and telemetry;
- :mod:`.findings`, :mod:`.notes` — the study's claims; warnings and the method text;
- :mod:`.tables` — every results table, built from a :class:`~.results.BenchResult`;
- :mod:`.report`, :mod:`.plots` (matplotlib, optional), :mod:`.output` — the files;
- :mod:`.runner` — :func:`~.runner.run_benchmark`, what the CLI and the window call.
"""
