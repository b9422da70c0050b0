//! The SQLite event index of a trace (schema, batched writes, typed queries). Filled in by the recording issue.
