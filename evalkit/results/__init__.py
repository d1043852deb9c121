"""The records every stage fills in (the schema of `results.json`), their files, the migration of older files,
the matching of two runs' models, provenance."""
