"""Reports (80): collectors fed by the engine's events, statistics records, Markdown reports,
column sets and the `get_data` / `get_report` / `dump` accessors.

`records.py` holds the frozen records, `stats.py` the formulas (numpy), `collectors.py` the
per-runtime `ReportHub`, `columns.py` the column sets, `markdown.py` the text and
`facades.py` the accessors exported as `bk.Schedule`, `bk.Heat`, …. Nothing is imported
here: the runtime creates the hub while the package itself is still importing.
"""
