//! The source-level debugger under the TUI, at the Session level: DWARF
//! line tables, breakpoints at `file:line`, the call stack with inlined
//! functions and the values of -O2 locals, watchpoints on a variable.
//! Needs /dev/kvm (to record and replay the demo trace).

mod demo;

use vmrr_debugger::dwarf::{Program, VariableKind};
use vmrr_debugger::session::{Direction, Moment, Move, Outcome, Scope, Session};

/// The line of the stale write in kv_apply: `store[key] = val;`.
fn stale_write_line() -> u32 {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/guests/kvstore/kvstore.c"))
        .expect("kvstore.c");
    let n = src
        .lines()
        .position(|l| l.trim() == "store[key] = val;")
        .expect("the store line");
    n as u32 + 1
}

fn program() -> Program {
    Program::load(&vmrr_guests::image("kvstore")).expect("kvstore.elf")
}

#[test]
fn lines_and_locations_of_the_kit_image() {
    let p = program();
    assert!(p.has_source(), "{:?}", p.debug_error());
    let line = stale_write_line();
    let r = p.resolve_location(&format!("kvstore.c:{line}")).expect("resolve");
    assert_eq!(r.label, format!("kvstore.c:{line}"));
    assert_eq!(r.addrs.len(), 1, "{r:?}");
    let apply = p.symbols().by_name("kv_apply").expect("kv_apply").addr;
    let at = p.line_at(r.addrs[0]).expect("a line");
    assert_eq!((at.file_name.as_str(), at.line), ("kvstore/kvstore.c", line));
    assert!(
        r.addrs[0] >= apply && r.addrs[0] < apply + 0x40,
        "{:#x} vs {apply:#x}",
        r.addrs[0]
    );
    // A function, an address, and mistakes.
    assert_eq!(p.resolve_location("kv_apply").expect("fn").addrs, vec![apply]);
    assert!(p.resolve_location("nosuch.c:3").is_err());
    assert!(p.resolve_location("kvstore.c:999999").is_err());
    assert!(p.resolve_location("no_such_function").is_err());
}

#[test]
fn reverse_continue_to_the_stale_write_shows_the_local_holding_31() {
    let mut s = Session::open(demo::kvstore_bug_trace()).expect("open");
    let p = program();
    // backup2's `apply = 5` marker: just after the late write of #5.
    s.perform(
        &Move::Goto(Moment::parse("backup2:38745").expect("moment")),
        &|_| {},
    )
    .expect("goto");
    let line = stale_write_line();
    let (added, r) = s
        .toggle_breakpoint_at(2, &p, &format!("kvstore.c:{line}"))
        .expect("bp");
    assert!(added && r.addrs.len() == 1);
    let out = s
        .perform(
            &Move::Continue {
                scope: Scope::Vm(2),
                dir: Direction::Backward,
            },
            &|_| {},
        )
        .expect("reverse-continue");
    assert!(matches!(out, Outcome::Hit(_)), "{out:?}");
    let stack = s.source_stack(2, &p).expect("stack");
    let top = &stack[0];
    assert_eq!(top.name, "kv_apply", "{stack:#?}");
    assert_eq!(top.line.as_ref().map(|l| l.line), Some(line));
    let value = |name: &str| {
        top.vars
            .iter()
            .find(|v| v.name == name)
            .map(|v| (v.value.clone(), v.kind))
            .unwrap_or_else(|| panic!("no {name} in {stack:#?}"))
    };
    assert_eq!(value("val"), ("31".to_string(), VariableKind::Argument));
    assert_eq!(value("key").0, "3");
    assert_eq!(value("seq").0, "5");
    // The callers: on_write, then the backup loop.
    let names: Vec<&str> = stack.iter().map(|f| f.name.as_str()).collect();
    assert!(names.contains(&"on_write"), "{names:?}");
    // Watching store[3] in backup2 from the start finds the first write of k3.
    let (added, wp, label) = s.toggle_watch_expr(2, &p, "store[3]").expect("watch");
    assert!(added && label == "store[3]" && wp.len == 4, "{wp:?} {label}");
}
