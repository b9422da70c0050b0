//! The pure view: [`render`] draws an [`AppState`] into a frame, nothing else.
//!
//! ```text
//! ┌ Timeline ───────────────────────────────────────────────────────────┐
//! │ lanes, one per VM; frames, faults as bands, the cursor; a legend    │
//! └─────────────────────────────────────────────────────────────────────┘
//! (┌ Registers ┐ wide)┌ Source / Mixed / Disassembly ──┐┌ Locals ───────┐
//! │                  ││ the current line marked        ││ stack strip   │
//! └──────────────────┘└────────────────────────────────┘└───────────────┘
//! ┌ Events / Bookmarks ──────────────┐┌ Console / Payload / Memory ─────┐
//! └──────────────────────────────────┘└─────────────────────────────────┘
//!  status: prompt, progress, message or the next move's hint; position
//! ```
//!
//! Below 170 columns the pane right of the code shows the locals (source
//! and mixed views) or the registers (disassembly view): panes are dropped,
//! not squeezed until their text is cut.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::Frame;

use crate::state::{AppState, CodeView, ListPane, SidePane};
use crate::widgets::{
    analysis::{CallsList, OriginList},
    bookmarks::BookmarksView,
    console::ConsoleView,
    events::EventsView,
    help::HelpOverlay,
    locals::LocalsView,
    memory::MemoryPane,
    payload::PayloadPane,
    registers,
    registers::RegistersView,
    source::CodePane,
    status::StatusBar,
    timeline::TimelineView,
    too_small::TooSmall,
};

/// Narrowest usable screen.
pub const MIN_WIDTH: u16 = 80;
/// Width from which the registers sit beside the code and the locals
/// (below it the code would be cut to make room for them).
const WIDE: u16 = 170;
/// Height of the code row at its smallest (9 register rows).
const FOCUS_MIN: u16 = 11;
/// Height of the lists row at its smallest (3 rows of events).
const LISTS_MIN: u16 = 5;

/// The timeline's height for `vms` lanes, with or without a spacer row
/// between lanes (where frames are drawn as links).
pub fn timeline_height(vms: usize, gaps: bool) -> u16 {
    let n = vms.max(1) as u16;
    let gap_rows = if gaps { n - 1 } else { 0 };
    2 + n + gap_rows + 1
}

/// Smallest screen (width, height) for a trace of `vms` VMs.
pub fn min_size(vms: usize) -> (u16, u16) {
    (MIN_WIDTH, timeline_height(vms, false) + FOCUS_MIN + LISTS_MIN + 1)
}

/// Draws the whole screen.
pub fn render(state: &AppState, frame: &mut Frame) {
    let area = frame.area();
    let (min_w, min_h) = min_size(state.vms.len());
    if area.width < min_w || area.height < min_h {
        frame.render_widget(
            TooSmall {
                width: area.width,
                height: area.height,
                min_width: min_w,
                min_height: min_h,
            },
            area,
        );
        return;
    }
    let n = state.vms.len();
    let gaps = area.height >= timeline_height(n, true) + FOCUS_MIN + LISTS_MIN + 1 + 4;
    let tl_h = timeline_height(n, gaps);
    let [timeline, main, status] = Layout::vertical([
        Constraint::Length(tl_h),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let rest = main.height;
    let focus_h = (rest / 2).max(FOCUS_MIN).min(rest.saturating_sub(LISTS_MIN));
    let [focus_row, lists_row] =
        Layout::vertical([Constraint::Length(focus_h), Constraint::Fill(1)]).areas(main);

    frame.render_widget(TimelineView { state, gaps }, timeline);

    let wide = area.width >= WIDE;
    // Below 100 columns, short register names leave the code some room.
    let narrow = area.width < 100;
    let regs_w = 2 * if narrow {
        registers::NARROW_CELL
    } else {
        registers::CELL
    } + 1;
    let locals_w = if wide {
        46
    } else if narrow {
        34
    } else {
        40
    };
    if wide {
        let [regs, code, locals] = Layout::horizontal([
            Constraint::Length(regs_w),
            Constraint::Fill(1),
            Constraint::Length(locals_w),
        ])
        .areas(focus_row);
        frame.render_widget(RegistersView { state, narrow }, regs);
        frame.render_widget(CodePane { state }, code);
        frame.render_widget(LocalsView { state }, locals);
    } else if state.code_view == CodeView::Disassembly
        || !state.snapshot.stack.iter().any(|s| !s.vars.is_empty())
    {
        // Assembly (no variables anywhere on the stack): registers say more.
        let [regs, code] =
            Layout::horizontal([Constraint::Length(regs_w), Constraint::Fill(1)]).areas(focus_row);
        frame.render_widget(RegistersView { state, narrow }, regs);
        frame.render_widget(CodePane { state }, code);
    } else {
        let [code, locals] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Length(locals_w)]).areas(focus_row);
        frame.render_widget(CodePane { state }, code);
        frame.render_widget(LocalsView { state }, locals);
    }

    let list_pct = if narrow { 58 } else { 55 };
    let [list, side] = Layout::horizontal([
        Constraint::Percentage(list_pct),
        Constraint::Percentage(100 - list_pct),
    ])
    .areas(lists_row);
    match state.list_pane {
        ListPane::Events => frame.render_widget(EventsView { state }, list),
        ListPane::Bookmarks => frame.render_widget(BookmarksView { state }, list),
        ListPane::Calls => frame.render_widget(CallsList { state }, list),
        ListPane::Origin => frame.render_widget(OriginList { state }, list),
    }
    match state.side_pane {
        SidePane::Memory => frame.render_widget(MemoryPane { state }, side),
        SidePane::Payload => frame.render_widget(PayloadPane { state }, side),
        SidePane::Console => frame.render_widget(ConsoleView { state }, side),
    }

    frame.render_widget(StatusBar { state }, status);
    if let Some(pos) = StatusBar::cursor_position(state, status) {
        frame.set_cursor_position(pos);
    }
    if state.show_help {
        frame.render_widget(HelpOverlay, centered(area));
    }
}

/// The help overlay's area: most of the screen (all of a small one).
fn centered(area: Rect) -> Rect {
    let w = if area.width < 100 {
        area.width
    } else {
        area.width.saturating_sub(4).min(96)
    };
    let h = if area.height < 30 {
        area.height
    } else {
        area.height.saturating_sub(2).min(30)
    };
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use vmrr_backend::regs::GeneralRegs;
    use vmrr_index::{EventKind, EventRow};

    use super::*;
    use crate::state::{
        DisasmLine, EventLine, Link, Mark, MarkKind, Message, Prompt, PromptKind, Snapshot, VmInfo,
    };

    /// A state with a bit of everything, without a trace.
    fn sample() -> AppState {
        let vms = ["primary", "backup1", "a-rather-long-vm-name"]
            .iter()
            .map(|n| VmInfo {
                name: n.to_string(),
                end_icount: 90_000,
                end_vtime: 200_000_000,
            })
            .collect();
        let mut s = AppState {
            trace_name: "t".into(),
            vms,
            end_vtime: 200_000_000,
            ..AppState::default()
        };
        s.snapshot = Snapshot {
            focus: 1,
            icount: 1234,
            vtime: 50_000_000,
            cursor_vtime: 50_000_000,
            regs: Some(GeneralRegs([7; 18])),
            disasm: (0..30)
                .map(|i| DisasmLine {
                    addr: 0x1000 + i * 3,
                    label: format!("f+{:#x}", i * 3),
                    text: "mov rax, rbx".into(),
                    current: i == 10,
                    breakpoint: i == 12,
                    source: None,
                })
                .collect(),
            ..Snapshot::default()
        };
        s.prev_regs = Some(GeneralRegs([6; 18]));
        s.timeline.span = 200_000_000;
        s.timeline.marks = (0..300)
            .map(|i| Mark {
                vm: i % 3,
                vtime: i as u64 * 600_000,
                kind: MarkKind::Marker,
            })
            .collect();
        s.timeline.links = vec![Link {
            id: 1,
            src: 0,
            dst: 2,
            sent: 10_000_000,
            recv: 10_050_000,
            lost: false,
        }];
        s.events.lines = (0..50)
            .map(|i| EventLine {
                event: EventRow::new(i % 3, i as u64 * 10, i as u64 * 1_000_000, EventKind::Marker)
                    .with_text("x"),
                detail: "x = 1".into(),
                haystack: "x".into(),
            })
            .collect();
        s.events.visible = (0..50).collect();
        s.events.selected = Some(20);
        s.console = vec!["hello".into(); 40];
        s.message = Some(Message {
            text: "a message".into(),
            error: true,
        });
        // Source, stack and payload, with hostile text in them.
        s.snapshot.source = Some(crate::state::SourceView {
            file_name: "dir/f\u{1b}.c".into(),
            lines: std::sync::Arc::new((1..200).map(|i| format!("line {i}")).collect()),
            current: 150,
            breakpoints: vec![151],
            error: None,
        });
        s.snapshot.stack = (0..4)
            .map(|i| vmrr_debugger::dwarf::FunctionScope {
                name: format!("f{i}\u{7}"),
                inlined: i % 2 == 0,
                frame: i / 2,
                pc: 0x1000,
                line: None,
                vars: (0..5)
                    .map(|j| vmrr_debugger::dwarf::Variable {
                        name: format!("v{j}"),
                        kind: vmrr_debugger::dwarf::VariableKind::Local,
                        type_name: "uint32_t".into(),
                        value: "31\n".into(),
                        available: j != 2,
                        addr: None,
                        size: 4,
                    })
                    .collect(),
            })
            .collect();
        s.calls = Some(crate::state::CallsView {
            function: "kv_apply".into(),
            signature: "void kv_apply(uint32_t seq, uint8_t key, uint32_t val)".into(),
            rows: (0..30)
                .map(|i| crate::state::CallLine {
                    vm: i % 3,
                    entry: vmrr_index::Pos::new(i as u32 % 3, i as u64 * 100, i as u64 * 1_000_000),
                    args: "seq = 5, key = 3, val = 31\u{1b}".into(),
                    ret: if i % 7 == 0 {
                        "-".into()
                    } else {
                        (i * 100 + 9).to_string()
                    },
                    ret_time: "1.0 ms".into(),
                    value: "void".into(),
                })
                .collect(),
            selected: Some(12),
        });
        s.origin = Some(crate::state::OriginView {
            header: "origin of store[3]: 0x10622c in a-rather-long-vm-name".into(),
            links: (0..12)
                .map(|i| crate::state::OriginLine {
                    pos: vmrr_index::Pos::new(i % 3, 38_711 - i as u64, 5),
                    place: format!("vm{i}:{}", 38_711 - i),
                    at: "kv_apply+0x1a (kvstore.c:369)".into(),
                    description:
                        "mov [rsi*4+106220h],edx: 0x10622c (store+0xc), 4 bytes = 0x1f <- edx (copy)".into(),
                })
                .collect(),
            hidden: 3,
            end: "a constant: 31".into(),
            selected: Some(11),
        });
        s.payload = Some(crate::state::PayloadView {
            frame: 3,
            route: "a → b".into(),
            bytes: (0..70).collect(),
            missing: None,
            isns: (None, None),
        });
        s
    }

    #[test]
    fn every_size_draws_without_panicking() {
        let mut s = sample();
        let panes = [
            ListPane::Events,
            ListPane::Bookmarks,
            ListPane::Calls,
            ListPane::Origin,
        ];
        for (i, (w, h)) in (1..=200u16)
            .step_by(7)
            .flat_map(|w| (1..=70u16).step_by(3).map(move |h| (w, h)))
            .enumerate()
        {
            s.list_pane = panes[i % panes.len()];
            for help in [false, true] {
                s.show_help = help;
                s.code_view = if help { CodeView::Mixed } else { CodeView::Source };
                s.side_pane = if help { SidePane::Payload } else { SidePane::Memory };
                s.prompt = help.then(|| Prompt {
                    kind: PromptKind::Goto,
                    input: "12ms".into(),
                });
                let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
                t.draw(|f| render(&s, f)).expect("draw");
            }
        }
    }

    #[test]
    fn memory_at_the_top_of_the_address_space_draws_what_exists() {
        let mut s = sample();
        s.side_pane = SidePane::Memory;
        s.snapshot.memory = crate::state::MemoryView {
            addr: u64::MAX - 7,
            label: "0xfffffffffffffff8".into(),
            bytes: vec![Some(0x41); 64],
        };
        let mut t = Terminal::new(TestBackend::new(160, 50)).expect("terminal");
        t.draw(|f| render(&s, f)).expect("draw");
        let text = format!("{:?}", t.backend().buffer());
        assert!(text.contains("fffffffffffffff8"), "the first row is shown");
        // The second row would start past the last address: there is none.
        assert!(!text.contains("00000000000000"), "no row wraps around to 0");
    }

    #[test]
    fn below_the_minimum_says_so() {
        let s = sample();
        let (w, h) = min_size(3);
        let mut t = Terminal::new(TestBackend::new(w - 1, h)).expect("terminal");
        t.draw(|f| render(&s, f)).expect("draw");
        let text = format!("{:?}", t.backend().buffer());
        assert!(text.contains("Terminal too small"));
        let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        t.draw(|f| render(&s, f)).expect("draw");
        let text = format!("{:?}", t.backend().buffer());
        assert!(!text.contains("Terminal too small") && text.contains("Timeline"));
    }
}
