//! The index-derived views: the events list, the bookmarks, the focus VM's
//! console and the timeline's marks and links, read through the App's own
//! read-only connection to the trace's index (typed queries only: no SQL
//! here). What is read is put into the widget states; where the selection
//! goes afterwards is their business ([`EventsState`](crate::state::EventsState)).

use std::cell::RefCell;
use std::collections::HashMap;

use vmrr_debugger::cluster::config::{FaultKind, FaultSpec};
use vmrr_debugger::describe::{printable, EventContext};
use vmrr_debugger::session::VmId;
use vmrr_debugger::trace::Trace;
use vmrr_index::{EventFilter, EventKind, EventRow, FrameFate, Index, PacketRow, Pos, Position};

use super::App;
use crate::format;
use crate::state::{Band, BandKind, EventLine, Link, Mark, MarkKind, PayloadView, VmInfo, KIND_PRESETS};

/// At most this many events are held by the events list; a larger trace
/// shows a window of them around the cursor.
const EVENTS_CAP: usize = 100_000;
/// At most this many events are drawn on the timeline at once.
const TIMELINE_CAP: usize = 50_000;
/// Console lines kept for the console view.
const CONSOLE_LINES: usize = 200;
/// At most this many frame rows are read at start (links and peers).
const FRAMES_CAP: usize = 2_000_000;

/// One frame's row (one per destination).
#[derive(Debug, Clone, Copy)]
struct FrameInfo {
    id: u64,
    src: usize,
    dst: usize,
    sent: u64,
    recv: Option<u64>,
    arrival: u64,
    received: bool,
}

/// Which calls the timeline marks: how many, the first and the last entry.
type CallsKey = (usize, Option<Pos>, Option<Pos>);

/// A frame as sent, and its TCP connection's initial sequence numbers.
type Packet = (PacketRow, (Option<u32>, Option<u32>));

/// What the views read from the index, and what they keep of it.
pub(super) struct IndexViews {
    index: Index,
    frames: Vec<FrameInfo>,
    /// Rows of `frames` by frame id.
    frames_by_id: HashMap<u64, Vec<usize>>,
    /// The packets read so far (each frame's bytes as sent, with its TCP
    /// connection's initial sequence numbers), by frame id: read when a
    /// list line or the payload pane first needs one.
    packets: RefCell<HashMap<u64, Option<Packet>>>,
    bands: Vec<Band>,
    /// When each fault of the cluster file takes effect, in schedule order
    /// (`remove fault N` counts from 1 in this order).
    fault_times: Vec<u64>,
    /// What the timeline's data was read for: (start, span, bookmarks,
    /// calls listed, interrupts shown); moving the cursor inside the window
    /// needs no new query.
    timeline_key: Option<(u64, u64, usize, CallsKey, bool)>,
}

impl IndexViews {
    /// Opens the trace's index read-only and reads its frames and faults once.
    pub(super) fn open(trace: &Trace, vms: &[VmInfo]) -> Result<IndexViews, String> {
        let path = trace.dir().join(vmrr_debugger::trace::INDEX_FILE);
        let index = Index::open_read_only(&path).map_err(|e| e.to_string())?;
        let frames: Vec<FrameInfo> = index
            .frame_edges(FRAMES_CAP)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|f| FrameInfo {
                id: f.id,
                src: f.src as usize,
                dst: f.dst as usize,
                sent: f.sent_vtime_ns,
                recv: f.recv_vtime_ns,
                arrival: f.arrival_ns,
                received: f.fate == FrameFate::Received,
            })
            .collect();
        let mut frames_by_id: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, f) in frames.iter().enumerate() {
            frames_by_id.entry(f.id).or_default().push(i);
        }
        let bands = fault_bands(&trace.config().faults, vms);
        let fault_times = trace.config().faults.iter().map(|f| f.at_ns).collect();
        Ok(IndexViews {
            index,
            frames,
            frames_by_id,
            packets: RefCell::new(HashMap::new()),
            bands,
            fault_times,
            timeline_key: None,
        })
    }

    /// The number (from 1, schedule order) of the fault whose event is at
    /// `vtime`, if exactly one fault takes effect then.
    pub(super) fn fault_number(&self, vtime: u64) -> Option<usize> {
        let mut at = self.fault_times.iter().enumerate().filter(|(_, &t)| t == vtime);
        match (at.next(), at.next()) {
            (Some((i, _)), None) => Some(i + 1),
            _ => None,
        }
    }

    /// The first receipt of frame `frame`, with its payload.
    fn first_receipt(&self, frame: u64) -> Result<Option<EventRow>, String> {
        let rows = self
            .index
            .frame_receipts_of_send(frame)
            .map_err(|e| e.to_string())?;
        for f in rows {
            let Some(icount) = f.recv_icount else {
                continue;
            };
            let found = self
                .index
                .frame_event(f.dst, icount, EventKind::FrameRecv, frame)
                .map_err(|e| e.to_string())?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Frame `id` as it was sent, if the trace keeps it (a read error
    /// shows as no packet: the line then reads as it did before schema 3).
    fn packet(&self, id: u64) -> Option<Packet> {
        if let Some(p) = self.packets.borrow().get(&id) {
            return p.clone();
        }
        let p = self.index.packet(id).ok().flatten().map(|p| {
            let isns = self.index.tcp_isns(&p).unwrap_or((None, None));
            (p, isns)
        });
        self.packets.borrow_mut().insert(id, p.clone());
        p
    }

    /// What a list line shows of an event beyond its row: a frame's peers
    /// and its packet.
    fn context_of(&self, e: &EventRow) -> EventContext {
        let (packet, isns) = match e.kind {
            EventKind::FrameSent | EventKind::FrameRecv => match e.value.and_then(|id| self.packet(id)) {
                Some((p, isns)) => (Some(p), isns),
                None => (None, (None, None)),
            },
            _ => (None, (None, None)),
        };
        EventContext {
            peers: self.peers_of(e),
            packet,
            isns,
        }
    }

    /// The other ends of a frame event: every receiver of a send, the
    /// sender of a receipt (from the frames read at start).
    fn peers_of(&self, e: &EventRow) -> Vec<VmId> {
        let Some(rows) = e.value.and_then(|id| self.frames_by_id.get(&id)) else {
            return Vec::new();
        };
        let rows = rows.iter().filter_map(|&i| self.frames.get(i));
        match e.kind {
            EventKind::FrameSent => rows
                .filter(|f| f.src == e.vm as usize)
                .map(|f| f.dst as VmId)
                .collect(),
            EventKind::FrameRecv => rows
                .filter(|f| f.dst == e.vm as usize)
                .map(|f| f.src as VmId)
                .take(1)
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl App {
    /// The events list's filter (VM and kind preset).
    pub(super) fn event_filter(&self) -> EventFilter {
        let ev = &self.state.events;
        let mut f = EventFilter::all().with_kinds(KIND_PRESETS[ev.preset].kinds.to_vec());
        if let Some(vm) = ev.vm_filter {
            f = f.with_vms(vec![vm as VmId]);
        }
        f
    }

    /// Reads the bookmarks.
    pub(super) fn reload_bookmarks(&mut self) {
        match self.views.index.bookmarks() {
            Ok(rows) => self.state.bookmarks.set_rows(rows),
            Err(e) => self.error(e.to_string()),
        }
    }

    /// Reads the events list for the current filters.
    pub(super) fn reload_events(&mut self) {
        let filter = self.event_filter();
        let total = self.views.index.count_events(&filter).unwrap_or(0);
        // A very large trace: a window starting a little before the cursor.
        let (from, truncated) = if total as usize > EVENTS_CAP {
            let t = self.state.snapshot.vtime;
            (t.saturating_sub(self.state.timeline.span), true)
        } else {
            (0, false)
        };
        let rows = match self
            .views
            .index
            .events_in_window(from, u64::MAX, &filter, EVENTS_CAP)
        {
            Ok(rows) => rows,
            Err(e) => {
                self.error(e.to_string());
                Vec::new()
            }
        };
        let names: Vec<String> = self.state.vms.iter().map(|v| v.name.clone()).collect();
        let name = |vm: VmId| names.get(vm as usize).cloned().unwrap_or_else(|| "?".into());
        let lines: Vec<EventLine> = rows
            .into_iter()
            .map(|event| {
                let detail = format::event_detail_with(&event, &name, &self.views.context_of(&event));
                let haystack = format!(
                    "{} {} {} {} {} {}",
                    format::vtime(event.vtime_ns),
                    name(event.vm),
                    event.icount,
                    format::kind(event.kind),
                    event.kind.as_str(),
                    detail
                )
                .to_lowercase();
                EventLine {
                    event,
                    detail,
                    haystack,
                }
            })
            .collect();
        self.state.events.set_lines(lines, truncated);
    }

    /// Reloads the events list after a filter changed, keeping the
    /// selected event if it is still listed.
    pub(super) fn refilter_events(&mut self) {
        let keep = self.state.events.selected_id();
        self.reload_events();
        let snap = &self.state.snapshot;
        self.state.events.reselect(keep, snap.cursor, snap.cursor_event);
        self.update_selected_frame();
    }

    /// Selects the event the cursor stands on (see
    /// [`EventsState::select_at_cursor`](crate::state::EventsState::select_at_cursor)).
    pub(super) fn select_event_at_cursor(&mut self) {
        let snap = &self.state.snapshot;
        self.state.events.select_at_cursor(snap.cursor, snap.cursor_event);
        self.update_selected_frame();
    }

    /// The timeline highlights the selected event's frame, and the payload
    /// pane shows its bytes.
    pub(super) fn update_selected_frame(&mut self) {
        let selected = self.state.events.selected_frame_event().cloned();
        self.state.timeline.selected_frame = selected.as_ref().and_then(|e| e.value);
        let Some(e) = selected else {
            self.state.payload = None;
            return;
        };
        let frame = e.value.unwrap_or(0);
        if self.state.payload.as_ref().is_some_and(|p| p.frame == frame) {
            return;
        }
        self.state.payload = Some(self.load_payload(&e, frame));
    }

    /// A frame's bytes: as sent (`packets`), else, in a trace recorded
    /// before schema 3, those a receipt carries.
    fn load_payload(&self, e: &EventRow, frame: u64) -> PayloadView {
        let name = |vm: VmId| self.state.vm_name(vm as usize).to_string();
        let peers = self.views.peers_of(e);
        let peer_names: Vec<String> = peers.iter().map(|&p| name(p)).collect();
        let route = match e.kind {
            EventKind::FrameSent => format!("{} → {}", name(e.vm), peer_names.join(", ")),
            _ => format!("{} → {}", peer_names.join(", "), name(e.vm)),
        };
        if let Some((p, isns)) = self.views.packet(frame) {
            return PayloadView {
                frame,
                route,
                bytes: p.bytes,
                missing: None,
                isns,
            };
        }
        let receipt = match e.kind {
            EventKind::FrameRecv => Ok(Some(e.clone())),
            _ => self.views.first_receipt(frame),
        };
        let (bytes, missing) = match receipt {
            Ok(Some(r)) => match r.payload {
                Some(p) => (p, None),
                None => (
                    Vec::new(),
                    Some("the index keeps no payload for this frame".to_string()),
                ),
            },
            Ok(None) => (
                Vec::new(),
                Some("never received (lost): the index keeps payloads with receipts only".to_string()),
            ),
            Err(err) => (Vec::new(), Some(err)),
        };
        PayloadView {
            frame,
            route,
            bytes,
            missing,
            isns: (None, None),
        }
    }

    /// The focus VM's console output before the cursor.
    pub(super) fn reload_console(&mut self) {
        let snap = &self.state.snapshot;
        let vm = snap.focus as VmId;
        let filter = EventFilter::all()
            .with_vms(vec![vm])
            .with_kinds(vec![EventKind::Console]);
        let mut pos = Position::at(vm, snap.icount, snap.vtime);
        let mut chunks = Vec::new();
        let mut newlines = 0;
        // Walk back event by event (each an indexed seek) until enough lines.
        while newlines <= CONSOLE_LINES {
            match self.views.index.prev_event_before(Some(vm), pos, &filter) {
                Ok(Some(e)) => {
                    pos = e.position();
                    let text = match (&e.text, &e.payload) {
                        (Some(t), _) => t.clone(),
                        (None, Some(p)) => String::from_utf8_lossy(p).into_owned(),
                        _ => String::new(),
                    };
                    newlines += text.matches('\n').count();
                    chunks.push(text);
                }
                Ok(None) => break,
                Err(e) => {
                    self.error(e.to_string());
                    break;
                }
            }
        }
        let text: String = chunks.into_iter().rev().collect();
        self.state.console_partial = !text.is_empty() && !text.ends_with('\n');
        // A guest's bytes never reach the terminal raw.
        let mut lines: Vec<String> = text.split('\n').map(printable).collect();
        if !self.state.console_partial {
            lines.pop();
        }
        let skip = lines.len().saturating_sub(CONSOLE_LINES);
        self.state.console = lines.split_off(skip);
    }

    /// Reads the marks and frames of the timeline's window (unless they are
    /// those of the same window already).
    pub(super) fn reload_timeline(&mut self) {
        let tl = &self.state.timeline;
        let (start, span, end) = (tl.start, tl.span, tl.end());
        let calls: CallsKey = self.state.calls.as_ref().map_or((0, None, None), |c| {
            let entry = |l: Option<&crate::state::CallLine>| l.map(|l| l.entry);
            (c.rows.len(), entry(c.rows.first()), entry(c.rows.last()))
        });
        let key = (
            start,
            span,
            self.state.bookmarks.rows.len(),
            calls,
            tl.show_interrupts,
        );
        if self.views.timeline_key == Some(key) {
            return;
        }
        self.views.timeline_key = Some(key);
        let mut kinds = vec![
            EventKind::Console,
            EventKind::FrameRecv,
            EventKind::FrameSent,
            EventKind::Marker,
            EventKind::Exit,
            EventKind::Stop,
        ];
        if tl.show_interrupts {
            kinds.push(EventKind::Interrupt);
        }
        let filter = EventFilter::all().with_kinds(kinds);
        let mut marks: Vec<Mark> = match self
            .views
            .index
            .events_in_window(start, end, &filter, TIMELINE_CAP)
        {
            Ok(rows) => rows
                .iter()
                .filter_map(|e| {
                    MarkKind::of(e.kind).map(|kind| Mark {
                        vm: e.vm as usize,
                        vtime: e.vtime_ns,
                        kind,
                    })
                })
                .collect(),
            Err(e) => {
                self.error(e.to_string());
                Vec::new()
            }
        };
        self.state.timeline.bands = self.views.bands.clone();
        marks.extend(
            self.state
                .bookmarks
                .rows
                .iter()
                .filter(|b| b.vtime_ns >= start && b.vtime_ns < end)
                .map(|b| Mark {
                    vm: b.vm as usize,
                    vtime: b.vtime_ns,
                    kind: MarkKind::Bookmark,
                }),
        );
        // The calls listed: each entry on its VM's lane.
        let calls = self.state.calls.iter().flat_map(|c| &c.rows);
        marks.extend(
            calls
                .filter(|c| c.entry.vtime_ns >= start && c.entry.vtime_ns < end)
                .map(|c| Mark {
                    vm: c.vm,
                    vtime: c.entry.vtime_ns,
                    kind: MarkKind::Call,
                }),
        );
        self.state.timeline.marks = marks;
        self.state.timeline.links = self
            .views
            .frames
            .iter()
            .filter(|f| f.sent < end && f.recv.unwrap_or(f.arrival) >= start)
            .map(|f| Link {
                id: f.id,
                src: f.src,
                dst: f.dst,
                sent: f.sent,
                recv: f.recv.unwrap_or(f.arrival),
                lost: !f.received,
            })
            .collect();
    }
}

/// The faults of the cluster file as bands: a partition on the VMs it cuts
/// off until the next heal (or the end), a drop or delay on both ends of
/// its link until it ends.
fn fault_bands(faults: &[FaultSpec], vms: &[VmInfo]) -> Vec<Band> {
    let end = vms.iter().map(|v| v.end_vtime).max().unwrap_or(0);
    let mut bands = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        match &f.kind {
            FaultKind::Partition(list) => {
                let heal = faults[i + 1..]
                    .iter()
                    .find(|h| matches!(h.kind, FaultKind::Heal))
                    .map(|h| h.at_ns)
                    .unwrap_or(end);
                bands.extend(list.iter().map(|&vm| Band {
                    vm,
                    from: f.at_ns,
                    to: heal,
                    kind: BandKind::Partition,
                }));
            }
            FaultKind::Heal => {}
            FaultKind::Drop {
                between, until_ns, ..
            }
            | FaultKind::Delay {
                between, until_ns, ..
            } => {
                let kind = if matches!(f.kind, FaultKind::Drop { .. }) {
                    BandKind::Drop
                } else {
                    BandKind::Delay
                };
                for vm in [between.0, between.1] {
                    bands.push(Band {
                        vm,
                        from: f.at_ns,
                        to: *until_ns,
                        kind,
                    });
                }
            }
        }
    }
    bands
}
