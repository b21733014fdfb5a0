"""The performance-watt benchmark (``phytoscope bench`` and the window's Benchmark page).

:mod:`.runner` plans and runs the variants, each in a fresh process (:mod:`.worker`),
through the study's four phases with telemetry beside them; :mod:`.report` turns the
results into Markdown/HTML/CSV and the study comparison; :mod:`.plots` draws the charts
(matplotlib, optional).
"""
