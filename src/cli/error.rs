//! How the command line reports a failure: the message with its causes, one
//! per line, and an exit status that says what kind of failure it was.

use std::error::Error;

use vmrr_debugger::session::SessionError;
use vmrr_debugger::trace::TraceError;
use vmrr_index::IndexError;

use super::{EXIT_DAMAGED, EXIT_ERROR};

/// A failure of a command: what to print, and the exit status.
#[derive(Debug)]
pub struct CliError {
    /// The message, then `caused by:` lines for its sources.
    pub text: String,
    /// The exit status.
    pub exit: u8,
}

impl From<String> for CliError {
    fn from(text: String) -> CliError {
        CliError {
            text,
            exit: EXIT_ERROR,
        }
    }
}

/// Whether `e` (or an error it was caused by) says that a file of a trace is
/// damaged: that gets its own exit status, never the one of a divergence.
fn is_damage(e: &(dyn Error + 'static)) -> bool {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<TraceError>() {
            if matches!(
                t,
                TraceError::Damaged { .. }
                    | TraceError::ImageMismatch { .. }
                    | TraceError::ImageMissing { .. }
            ) {
                return true;
            }
        }
        if let Some(i) = err.downcast_ref::<IndexError>() {
            if i.is_damage() {
                return true;
            }
        }
        if let Some(SessionError::Inconsistent(_)) = err.downcast_ref::<SessionError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

impl CliError {
    /// The error `e` with the chain of its causes (each on its own line,
    /// unless the message already says it).
    pub fn of(e: &(dyn Error + 'static)) -> CliError {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let line = c.to_string();
            if !text.contains(&line) {
                text += &format!("\n  caused by: {line}");
            }
            cause = c.source();
        }
        CliError {
            text,
            exit: if is_damage(e) { EXIT_DAMAGED } else { EXIT_ERROR },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_listed_and_damage_has_its_status() {
        let damaged = TraceError::Damaged {
            path: "t/index.sqlite".into(),
            problem: "a row is missing".into(),
        };
        let e = CliError::of(&damaged);
        assert_eq!(e.exit, EXIT_DAMAGED);
        assert!(e.text.contains("a row is missing"), "{}", e.text);
        let io = TraceError::Io {
            path: "t/x".into(),
            source: std::io::Error::other("disk on fire"),
        };
        let e = CliError::of(&io);
        assert_eq!(e.exit, EXIT_ERROR);
        assert_eq!(e.text, "t/x: disk on fire");
    }
}
