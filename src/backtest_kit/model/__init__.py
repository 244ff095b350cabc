"""Pure records: candles, signals, tick results, event payloads. No I/O, no engine logic."""
