"""evalkit from Python: functions over in-memory models and pairs, the results they return and a TRL callback."""
