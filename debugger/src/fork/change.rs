//! The changes a fork makes, as a person writes them: one grammar for the
//! command line (`vmrr fork TRACE --at 100ms "drop frame 49"`), gdb's
//! `monitor fork` and any other view. Parsing needs no trace; VM names,
//! frame ids and fault numbers are checked against the trace when the fork
//! is built.

use std::fmt;

use crate::vtime;

/// The forms, for help texts and error messages.
pub const CHANGES_HELP: &str = "\
  drop frame ID [to VM]                     lose a frame (by its id in the trace)
  drop next frame [from VM] [to VM]         lose the next frame delivered after the fork point
  delay frame ID [to VM] by DURATION        deliver it later (also: delay next frame ... by DURATION)
  duplicate frame ID [to VM] [after DUR]    deliver a second copy (also: duplicate next frame ...)
  partition VM[,VM...] at TIME              cut these VMs off from the others
  heal at TIME                              remove every partition
  drop PERCENT% between VM and VM from TIME [until TIME]
  delay DURATION between VM and VM from TIME [until TIME]
  move fault N to TIME                      N as numbered by `vmrr fork TRACE --list-faults`
  remove fault N
  set VM REGISTER = VALUE                   rax, rip, ... at the fork point
  set VM VARIABLE = VALUE                   a global, name[i], or 0xADDR[:LEN], little-endian
  seed N                                    new seed for fault decisions and rdrand";

/// Which frame a frame change means, with VMs still as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSpec {
    /// A frame by its id in the trace (only its copy to `to`, if given).
    Id {
        /// The frame id (`frames.id`).
        id: u64,
        /// One receiver of a flooded frame.
        to: Option<String>,
    },
    /// The next frame, in send order, not delivered at the fork point.
    Next {
        /// Its sender, or any.
        from: Option<String>,
        /// Its receiver, or any.
        to: Option<String>,
    },
}

/// What a frame change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerb {
    /// Lose the frame.
    Drop,
    /// Deliver it this much later (ns).
    Delay(u64),
    /// Deliver a second copy this much after it (ns).
    Duplicate(u64),
}

/// A fault to add, with VMs still as written.
#[derive(Debug, Clone, PartialEq)]
pub enum NewFault {
    /// Cut these VMs off from the others.
    Partition(Vec<String>),
    /// Remove every partition.
    Heal,
    /// Lose this fraction of the frames between two VMs.
    Drop {
        /// The two VMs.
        between: (String, String),
        /// 0.0 ..= 1.0.
        fraction: f64,
        /// End (exclusive), if any.
        until_ns: Option<u64>,
    },
    /// Add latency between two VMs.
    Delay {
        /// The two VMs.
        between: (String, String),
        /// Extra latency, ns.
        extra_ns: u64,
        /// End (exclusive), if any.
        until_ns: Option<u64>,
    },
}

/// One change a fork makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Drop, delay or duplicate a frame.
    Frame {
        /// Which frame.
        frame: FrameSpec,
        /// What happens to it.
        verb: FrameVerb,
    },
    /// Add a fault taking effect at `at_ns`.
    AddFault {
        /// When (at or after the fork point).
        at_ns: u64,
        /// What.
        fault: NewFault,
    },
    /// Move fault number `number` (1-based, schedule order) to `to_ns`.
    MoveFault {
        /// The fault's number.
        number: usize,
        /// Its new time (at or after the fork point).
        to_ns: u64,
    },
    /// Remove fault number `number`.
    RemoveFault {
        /// The fault's number.
        number: usize,
    },
    /// Set a register or memory of a VM at the fork point.
    Set {
        /// The VM, as written.
        vm: String,
        /// A register name, a variable, `name[i]` or `0xADDR[:LEN]`.
        target: String,
        /// The value (written little-endian in the target's size).
        value: u64,
    },
    /// A new cluster seed.
    Seed(u64),
}

/// Why a text is not a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the change '{text}': {problem}. A change is one of:\n{CHANGES_HELP}")]
pub struct ChangeError {
    /// The change as written.
    pub text: String,
    /// What is wrong.
    pub problem: String,
}

/// The words of a change, consumed from the front.
struct Words<'a> {
    words: Vec<&'a str>,
    at: usize,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let w = self.words.get(self.at).copied();
        self.at += 1;
        w
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).copied()
    }

    /// Consumes `word` if it comes next (ignoring case).
    fn eat(&mut self, word: &str) -> bool {
        if self.peek().is_some_and(|w| w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, word: &str) -> Result<(), String> {
        if self.eat(word) {
            Ok(())
        } else {
            Err(format!("expected '{word}'{}", self.found()))
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(w) => format!(", found '{w}'"),
            None => " at the end".into(),
        }
    }

    fn value(&mut self, what: &str) -> Result<&'a str, String> {
        self.next().ok_or_else(|| format!("{what} is missing at the end"))
    }

    fn done(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            Some(w) => Err(format!("unexpected '{w}' after the change")),
        }
    }
}

fn number(text: &str, what: &str) -> Result<u64, String> {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    let parsed = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse::<u64>(),
    };
    parsed.map_err(|_| format!("{what} '{text}' is not a number"))
}

fn time(text: &str, what: &str) -> Result<u64, String> {
    vtime::parse(text)
        .ok_or_else(|| format!("{what} '{text}' is not a time: write it with a unit, as 12.5ms, 300us"))
}

/// A value to store: decimal, 0x hex, or negative decimal (two's complement).
fn value(text: &str) -> Result<u64, String> {
    match text.strip_prefix('-') {
        Some(rest) => number(rest, "the value").map(|v| v.wrapping_neg()),
        None => number(text, "the value"),
    }
}

fn frame_spec(w: &mut Words) -> Result<FrameSpec, String> {
    if w.eat("next") {
        w.eat("frame");
        let mut from = None;
        let mut to = None;
        loop {
            if w.eat("from") {
                from = Some(w.value("the sending VM")?.to_string());
            } else if w.eat("to") {
                to = Some(w.value("the receiving VM")?.to_string());
            } else {
                break;
            }
        }
        return Ok(FrameSpec::Next { from, to });
    }
    w.expect("frame")?;
    let id_text = w.value("the frame id")?;
    let id = number(id_text.trim_start_matches('#'), "the frame id")?;
    let to = if w.eat("to") {
        Some(w.value("the receiving VM")?.to_string())
    } else {
        None
    };
    Ok(FrameSpec::Id { id, to })
}

/// `A and B` or `A,B`.
fn between(w: &mut Words) -> Result<(String, String), String> {
    w.expect("between")?;
    let a = w.value("the first VM")?;
    if let Some((a, b)) = a.split_once(',').filter(|(_, b)| !b.is_empty()) {
        return Ok((a.to_string(), b.to_string()));
    }
    w.expect("and")?;
    let b = w.value("the second VM")?;
    Ok((a.trim_end_matches(',').to_string(), b.to_string()))
}

/// `from TIME [until TIME]`.
fn span(w: &mut Words) -> Result<(u64, Option<u64>), String> {
    w.expect("from")?;
    let from = time(w.value("the start")?, "the start")?;
    let until = if w.eat("until") {
        Some(time(w.value("the end")?, "the end")?)
    } else {
        None
    };
    if until.is_some_and(|u| u <= from) {
        return Err("the fault must end after it starts".into());
    }
    Ok((from, until))
}

fn parse_words(w: &mut Words) -> Result<Change, String> {
    let verb = w.value("the change")?.to_ascii_lowercase();
    let change = match verb.as_str() {
        "drop" | "delay" | "duplicate" | "dup"
            if w.peek()
                .is_some_and(|n| n.eq_ignore_ascii_case("frame") || n.eq_ignore_ascii_case("next")) =>
        {
            let frame = frame_spec(w)?;
            let verb = match verb.as_str() {
                "drop" => FrameVerb::Drop,
                "delay" => {
                    w.expect("by")?;
                    FrameVerb::Delay(time(w.value("the delay")?, "the delay")?)
                }
                _ => FrameVerb::Duplicate(if w.eat("after") {
                    time(w.value("the delay")?, "the delay")?
                } else {
                    0
                }),
            };
            Change::Frame { frame, verb }
        }
        "drop" => {
            let pct = w.value("the share of frames")?;
            let fraction = pct
                .strip_suffix('%')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .map(|p| p / 100.0)
                .ok_or_else(|| {
                    format!("'{pct}' is not a share of frames: write 0% to 100%, or 'frame ID'")
                })?;
            let between = between(w)?;
            let (at_ns, until_ns) = span(w)?;
            Change::AddFault {
                at_ns,
                fault: NewFault::Drop {
                    between,
                    fraction,
                    until_ns,
                },
            }
        }
        "delay" => {
            let extra_ns = time(w.value("the extra latency")?, "the extra latency")?;
            let between = between(w)?;
            let (at_ns, until_ns) = span(w)?;
            Change::AddFault {
                at_ns,
                fault: NewFault::Delay {
                    between,
                    extra_ns,
                    until_ns,
                },
            }
        }
        "partition" => {
            let mut vms = Vec::new();
            while let Some(word) = w.peek().filter(|x| !x.eq_ignore_ascii_case("at")) {
                w.next();
                vms.extend(word.split(',').filter(|s| !s.is_empty()).map(str::to_string));
            }
            if vms.is_empty() {
                return Err("name the VMs to cut off".into());
            }
            w.expect("at")?;
            let at_ns = time(w.value("the time")?, "the time")?;
            Change::AddFault {
                at_ns,
                fault: NewFault::Partition(vms),
            }
        }
        "heal" => {
            w.expect("at")?;
            Change::AddFault {
                at_ns: time(w.value("the time")?, "the time")?,
                fault: NewFault::Heal,
            }
        }
        "move" => {
            w.expect("fault")?;
            let number = number(w.value("the fault number")?, "the fault number")? as usize;
            w.expect("to")?;
            Change::MoveFault {
                number,
                to_ns: time(w.value("the time")?, "the time")?,
            }
        }
        "remove" => {
            w.expect("fault")?;
            Change::RemoveFault {
                number: number(w.value("the fault number")?, "the fault number")? as usize,
            }
        }
        "set" => {
            let vm = w.value("the VM")?.to_string();
            // `x = 5`, `x=5`, `x =5`, `x= 5`.
            let rest: Vec<&str> = std::iter::from_fn(|| w.next()).collect();
            let joined = rest.join(" ");
            let (target, val) = joined
                .split_once('=')
                .ok_or_else(|| "write it as: set VM TARGET = VALUE".to_string())?;
            let (target, val) = (target.trim(), val.trim());
            if target.is_empty() || val.is_empty() || target.contains(' ') {
                return Err("write it as: set VM TARGET = VALUE".into());
            }
            Change::Set {
                vm,
                target: target.to_string(),
                value: value(val)?,
            }
        }
        "seed" => Change::Seed(number(w.value("the seed")?, "the seed")?),
        other => return Err(format!("'{other}' is not a change")),
    };
    w.done()?;
    Ok(change)
}

impl Change {
    /// Parses one change (see [`CHANGES_HELP`]).
    pub fn parse(text: &str) -> Result<Change, ChangeError> {
        let mut words = Words {
            words: text.split_whitespace().collect(),
            at: 0,
        };
        parse_words(&mut words).map_err(|problem| ChangeError {
            text: text.trim().to_string(),
            problem,
        })
    }
}

impl std::str::FromStr for Change {
    type Err = ChangeError;

    fn from_str(s: &str) -> Result<Change, ChangeError> {
        Change::parse(s)
    }
}

fn t(ns: u64) -> String {
    vtime::format_exact(ns)
}

impl fmt::Display for FrameSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameSpec::Id { id, to } => {
                write!(f, "frame {id}")?;
                if let Some(to) = to {
                    write!(f, " to {to}")?;
                }
                Ok(())
            }
            FrameSpec::Next { from, to } => {
                f.write_str("next frame")?;
                if let Some(from) = from {
                    write!(f, " from {from}")?;
                }
                if let Some(to) = to {
                    write!(f, " to {to}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Change {
    /// The canonical spelling, which parses back to the same change.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let until = |u: &Option<u64>| u.map(|u| format!(" until {}", t(u))).unwrap_or_default();
        match self {
            Change::Frame { frame, verb } => match verb {
                FrameVerb::Drop => write!(f, "drop {frame}"),
                FrameVerb::Delay(ns) => write!(f, "delay {frame} by {}", t(*ns)),
                FrameVerb::Duplicate(0) => write!(f, "duplicate {frame}"),
                FrameVerb::Duplicate(ns) => write!(f, "duplicate {frame} after {}", t(*ns)),
            },
            Change::AddFault { at_ns, fault } => match fault {
                NewFault::Partition(vms) => write!(f, "partition {} at {}", vms.join(","), t(*at_ns)),
                NewFault::Heal => write!(f, "heal at {}", t(*at_ns)),
                NewFault::Drop {
                    between,
                    fraction,
                    until_ns,
                } => write!(
                    f,
                    "drop {}% between {} and {} from {}{}",
                    fraction * 100.0,
                    between.0,
                    between.1,
                    t(*at_ns),
                    until(until_ns)
                ),
                NewFault::Delay {
                    between,
                    extra_ns,
                    until_ns,
                } => write!(
                    f,
                    "delay {} between {} and {} from {}{}",
                    t(*extra_ns),
                    between.0,
                    between.1,
                    t(*at_ns),
                    until(until_ns)
                ),
            },
            Change::MoveFault { number, to_ns } => write!(f, "move fault {number} to {}", t(*to_ns)),
            Change::RemoveFault { number } => write!(f, "remove fault {number}"),
            Change::Set { vm, target, value } => write!(f, "set {vm} {target} = {value:#x}"),
            Change::Seed(seed) => write!(f, "seed {seed}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        let cases = [
            "drop frame 49",
            "drop frame #49 to backup2",
            "drop next frame from primary to backup2",
            "drop next",
            "delay frame 12 by 2ms",
            "delay next frame to backup1 by 300us",
            "duplicate frame 7",
            "dup frame 7 after 1ms",
            "partition backup2 at 80ms",
            "partition a,b c at 1s",
            "heal at 110ms",
            "drop 50% between primary and backup1 from 80ms until 90ms",
            "drop 10% between primary,backup1 from 80ms",
            "delay 1ms between primary and backup2 from 100ms",
            "move fault 2 to 110ms",
            "remove fault 1",
            "set backup2 applied = 10",
            "set backup2 rax=0x10",
            "set primary store[3] = -1",
            "SEED 42",
        ];
        for text in cases {
            let c = Change::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let again = Change::parse(&c.to_string()).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert_eq!(c, again, "{text} -> {c}");
        }
        assert_eq!(
            Change::parse("set primary store[3] = -1"),
            Ok(Change::Set {
                vm: "primary".into(),
                target: "store[3]".into(),
                value: u64::MAX
            })
        );
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (text, want) in [
            ("", "the change is missing"),
            ("explode", "'explode' is not a change"),
            ("drop frame x", "the frame id 'x' is not a number"),
            ("delay frame 3", "expected 'by' at the end"),
            ("heal 100ms", "expected 'at', found '100ms'"),
            ("heal at 100", "is not a time"),
            ("drop 150% between a and b from 1ms", "not a share of frames"),
            (
                "drop 5% between a and b from 2ms until 1ms",
                "must end after it starts",
            ),
            ("set vm0 rax", "set VM TARGET = VALUE"),
            ("partition at 1ms", "name the VMs"),
            ("remove fault 1 now", "unexpected 'now'"),
        ] {
            let e = Change::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("A change is one of"), "{e}");
        }
    }
}
