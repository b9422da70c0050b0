//! The ratatui application over a `debugger::Session`. Filled in by the TUI issue.
