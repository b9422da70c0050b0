//! Names of VMs: they become file names inside a trace (`images/<name>.elf`),
//! appear in every line of output, and are typed back in moments
//! (`primary:1200`), `--vm a,b` lists and gdb commands. So a name is one
//! plain word: letters, digits, `-`, `_` and `.`, at most [`MAX_VM_NAME_BYTES`]
//! bytes, not starting with `.` or `-`, without `..`. That keeps every name
//! a safe file name (no `/`, no `..`, no hidden file), free of control
//! characters that would reach a terminal raw, and unambiguous in the
//! grammars that quote it.

/// Longest VM name, in bytes (with `.elf` it stays far below any file
/// system's name limit).
pub const MAX_VM_NAME_BYTES: usize = 64;

/// Why a VM name is refused. The messages never repeat the name itself: it
/// may hold the control characters they are about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty (or only white space).
    #[error("is empty: give the VM a name, e.g. \"node1\"")]
    Empty,
    /// The name is longer than [`MAX_VM_NAME_BYTES`].
    #[error("is {0} bytes long; a VM name has at most {MAX_VM_NAME_BYTES}")]
    TooLong(usize),
    /// The name holds a control character.
    #[error("contains a control character ({}); use letters, digits, '-', '_' and '.'", unicode(*.0))]
    Control(char),
    /// The name holds a character outside the allowed set.
    #[error("contains {}; use letters, digits, '-', '_' and '.'", describe(*.0))]
    Character(char),
    /// The name starts with `.` or `-`.
    #[error("starts with '{0}'; start it with a letter or a digit")]
    Leading(char),
    /// The name holds `..`.
    #[error("contains \"..\", which could name a parent folder; use another name")]
    DotDot,
}

fn unicode(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

fn describe(c: char) -> String {
    match c {
        '/' | '\\' => format!("a path separator '{c}'"),
        c if c.is_whitespace() => format!("white space ({})", unicode(c)),
        c => format!("'{c}' ({})", unicode(c)),
    }
}

/// Checks a VM name against the rules of this module.
pub fn check_vm_name(name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError::Control(c));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameError::Character(c));
    }
    if name.len() > MAX_VM_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().next().filter(|c| matches!(c, '.' | '-')) {
        return Err(NameError::Leading(c));
    }
    if name.contains("..") {
        return Err(NameError::DotDot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_pass() {
        for ok in ["primary", "backup-2", "node_1", "v1.2", "nœud", "A"] {
            assert_eq!(check_vm_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn path_like_and_control_names_are_refused() {
        let cases = [
            ("../../etc/evil", NameError::Character('/')),
            ("..", NameError::Leading('.')),
            ("a..b", NameError::DotDot),
            (".hidden", NameError::Leading('.')),
            ("-v", NameError::Leading('-')),
            ("a\\b", NameError::Character('\\')),
            ("red\x1b[31m", NameError::Control('\x1b')),
            ("two words", NameError::Character(' ')),
            ("vm:1", NameError::Character(':')),
            ("", NameError::Empty),
        ];
        for (name, want) in cases {
            assert_eq!(check_vm_name(name), Err(want), "{name:?}");
        }
        assert_eq!(check_vm_name(&"x".repeat(65)), Err(NameError::TooLong(65)));
        let e = NameError::Control('\x1b').to_string();
        assert!(e.contains("U+001B") && !e.contains('\x1b'), "{e}");
    }
}
