//! The gdb remote target over a `debugger::Session`. Filled in by the gdb issue.
