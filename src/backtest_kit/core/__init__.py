"""The engine's pure core: the strategy state machine, PnL and exit resolution."""
