"""The records every stage fills in (the schema of `results.json`), their files, migration, matching, provenance."""
