"""The records every stage fills in (`results.json`'s schema), their files, migration of older files, matching and provenance."""
