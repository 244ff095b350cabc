"""`python -m backtest_kit` runs the command line."""

from .cli import main

raise SystemExit(main())
