//! The connection loop: bytes from gdb, through [`crate::packets`], into
//! gdbstub's state machine; resumes run on a worker thread while the
//! connection is watched for gdb's Ctrl-C.
//!
//! Three threads take part in one connection: a reader that frames what gdb
//! sends, this loop, and (while the target "runs") a worker that moves the
//! session. Reader and worker report through one channel, so the loop waits
//! on a single queue whatever happens first.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gdbstub::common::Signal;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{GdbStubBuilder, GdbStubError, MultiThreadStopReason};
use vmrr_debugger::session::Session;

use crate::packets::{encode, guard, Frame, Framer, Guard, Noted, ThreadRef, PACKET_SIZE};
use crate::resume::{self, Outcome, Request, ResumeState};
use crate::target::{lock, tid_of, VmrrTarget};
use crate::{GdbError, Logger};

/// How long a search runs before gdb's console shows its progress.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// What gdb is sent. Replies are kept until gdbstub flushes them, so that a
/// reply cut short by an error never goes out half-written; `muted` drops
/// them while a rebuilt stub is brought up to date.
pub(crate) struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    muted: bool,
}

impl gdbstub::conn::Connection for Conn {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> Result<(), Self::Error> {
        self.out.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.send()
    }

    fn on_session_start(&mut self) -> Result<(), Self::Error> {
        // Small packets, one at a time: do not let Nagle hold them back.
        self.stream.set_nodelay(true)
    }
}

impl Conn {
    /// Sends what gdbstub wrote so far (or drops it when muted).
    fn send(&mut self) -> std::io::Result<()> {
        let out = std::mem::take(&mut self.out);
        if self.muted || out.is_empty() {
            return Ok(());
        }
        Write::write_all(&mut self.stream, &out)
    }
}

type Stub = GdbStubStateMachine<'static, VmrrTarget, Conn>;
type StubError = GdbStubError<String, std::io::Error>;

fn conn_of(sm: &mut Stub) -> &mut Conn {
    match sm {
        GdbStubStateMachine::Idle(g) => g.borrow_conn(),
        GdbStubStateMachine::Running(g) => g.borrow_conn(),
        GdbStubStateMachine::CtrlCInterrupt(g) => g.borrow_conn(),
        GdbStubStateMachine::Disconnected(g) => g.borrow_conn(),
    }
}

/// Something for the connection loop to act on.
enum Event {
    /// A unit of what gdb sent.
    Frame(Frame),
    /// gdb closed the connection.
    Closed,
    /// The worker finished a resume.
    Done(Outcome),
    /// The worker's search progressed this far (0 to 1).
    Progress(f64),
}

/// Reads and frames what gdb sends until the connection closes.
fn spawn_reader(mut stream: TcpStream, tx: Sender<Event>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut framer = Framer::default();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => 0,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n == 0 {
                let _ = tx.send(Event::Closed);
                return;
            }
            for &b in &buf[..n] {
                if let Some(frame) = framer.push(b) {
                    if tx.send(Event::Frame(frame)).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// One gdb connection.
struct Server {
    stream: TcpStream,
    target: VmrrTarget,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Frames that arrived while the target ran (gdb should not send any,
    /// but a client may).
    queued: VecDeque<Frame>,
    /// The negotiation packets (`qSupported`, `QStartNoAckMode`), replayed
    /// into a rebuilt stub so that it speaks the same dialect.
    sticky: Vec<Vec<u8>>,
    cancel: Arc<AtomicBool>,
    log: Logger,
}

/// Serves one gdb connection until gdb detaches or disconnects.
pub fn serve_connection(
    session: Arc<Mutex<Session>>,
    stream: TcpStream,
    log: Logger,
) -> Result<(), GdbError> {
    let (tx, rx) = mpsc::channel();
    let reader = spawn_reader(stream.try_clone()?, tx.clone());
    let cancel = lock(&session).cancel_flag();
    let mut server = Server {
        stream,
        target: VmrrTarget::new(session, log.clone()),
        tx,
        rx,
        queued: VecDeque::new(),
        sticky: Vec::new(),
        cancel,
        log,
    };
    let result = server.run();
    server.target.cleanup();
    let _ = server.stream.shutdown(Shutdown::Both);
    let _ = reader.join();
    result
}

impl Server {
    fn run(&mut self) -> Result<(), GdbError> {
        let mut sm = self.new_stub(false)?;
        loop {
            let next = match sm {
                GdbStubStateMachine::Idle(gdb) => match self.next_frame() {
                    Some(frame) => self.on_frame(gdb.into(), frame)?,
                    None => None,
                },
                GdbStubStateMachine::Running(gdb) => self.run_pending(gdb.into())?,
                GdbStubStateMachine::CtrlCInterrupt(gdb) => {
                    let vm = lock(&self.target.session).focus();
                    let reason = MultiThreadStopReason::SignalWithThread {
                        tid: tid_of(vm),
                        signal: Signal::SIGINT,
                    };
                    match gdb.interrupt_handled(&mut self.target, Some(reason)) {
                        Ok(sm) => Some(sm),
                        Err(e) => self.recover(e, false)?,
                    }
                }
                GdbStubStateMachine::Disconnected(_) => None,
            };
            match next {
                Some(next) => sm = next,
                None => return Ok(()),
            }
        }
    }

    /// A stub over a new handle on the connection; `replay` brings it to
    /// where the previous one was (dialect and selected threads).
    fn new_stub(&mut self, replay: bool) -> Result<Stub, GdbError> {
        let conn = Conn {
            stream: self.stream.try_clone()?,
            out: Vec::new(),
            muted: replay,
        };
        let stub = GdbStubBuilder::new(conn)
            .packet_buffer_size(PACKET_SIZE)
            .build()
            .map_err(|e| GdbError::Stub(e.to_string()))?;
        let mut sm = stub
            .run_state_machine(&mut self.target)
            .map_err(|e| GdbError::Stub(e.to_string()))?;
        if replay {
            let mut packets = self.sticky.clone();
            if let Some(tid) = self.target.general {
                packets.push(format!("Hg{:x}", tid.get()).into_bytes());
            }
            packets.push(match self.target.client.continue_thread {
                ThreadRef::Id(tid) => format!("Hc{:x}", tid.get()).into_bytes(),
                ThreadRef::Any | ThreadRef::All => b"Hc0".to_vec(),
            });
            for body in packets {
                match self.push_bytes(sm, &encode(&body)) {
                    Ok(next) => sm = next,
                    Err(e) => return Err(GdbError::Stub(format!("could not restart the gdb stub: {e}"))),
                }
            }
            let conn = conn_of(&mut sm);
            conn.out.clear();
            conn.muted = false;
        }
        Ok(sm)
    }

    /// Feeds bytes to the state machine.
    fn push_bytes(&mut self, mut sm: Stub, bytes: &[u8]) -> Result<Stub, StubError> {
        for &b in bytes {
            sm = match sm {
                GdbStubStateMachine::Idle(g) => g.incoming_data(&mut self.target, b)?,
                GdbStubStateMachine::Running(g) => g.incoming_data(&mut self.target, b)?,
                other => return Ok(other),
            };
        }
        Ok(sm)
    }

    /// The next frame from gdb; `None` once it has gone.
    fn next_frame(&mut self) -> Option<Frame> {
        if let Some(frame) = self.queued.pop_front() {
            return Some(frame);
        }
        loop {
            match self.rx.recv() {
                Ok(Event::Frame(frame)) => return Some(frame),
                Ok(Event::Closed) | Err(_) => return None,
                Ok(Event::Done(_) | Event::Progress(_)) => {}
            }
        }
    }

    /// Sends a reply of our own (with the ack gdb expects in ack mode).
    fn reply(&mut self, body: &str) -> std::io::Result<()> {
        let mut out = Vec::new();
        if !self.target.client.no_ack {
            out.push(b'+');
        }
        out.extend_from_slice(&encode(body.as_bytes()));
        self.stream.write_all(&out)
    }

    /// Text for gdb's console (an `O` packet), while gdb waits for a stop.
    fn console(&mut self, text: &str) -> std::io::Result<()> {
        let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        self.stream.write_all(&encode(format!("O{hex}").as_bytes()))
    }

    fn on_frame(&mut self, sm: Stub, frame: Frame) -> Result<Option<Stub>, GdbError> {
        let body = match frame {
            // Nothing runs: there is nothing to interrupt.
            Frame::Interrupt => return Ok(Some(sm)),
            Frame::Corrupt => {
                if !self.target.client.no_ack {
                    self.stream.write_all(b"-")?;
                }
                return Ok(Some(sm));
            }
            Frame::TooLong => {
                self.reply("E01")?;
                return Ok(Some(sm));
            }
            Frame::Packet(body) => body,
        };
        let body = match guard(&body) {
            Guard::Reply(r) => {
                self.reply(r)?;
                return Ok(Some(sm));
            }
            Guard::Pass(body) => body,
        };
        if body == b"?" {
            return self.initial_stop(sm).map(Some);
        }
        match self.target.client.note(&body) {
            Noted::General(tid) => self.target.general = Some(tid),
            Noted::Selected(tid) => self.target.select(tid),
            Noted::Nothing => {}
        }
        match self.push_bytes(sm, &encode(&body)) {
            Ok(mut sm) => {
                self.remember(body);
                match conn_of(&mut sm).send() {
                    Ok(()) => Ok(Some(sm)),
                    Err(_) => Ok(None),
                }
            }
            Err(e) => {
                (self.log)(&format!(
                    "gdb packet '{}' refused: {e}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(80)
                        .collect::<String>()
                ));
                self.recover(e, true)
            }
        }
    }

    /// Keeps a negotiation packet gdbstub accepted, for [`Server::new_stub`].
    fn remember(&mut self, body: Vec<u8>) {
        if body.starts_with(b"qSupported") {
            self.sticky.retain(|p| !p.starts_with(b"qSupported"));
            self.sticky.push(body);
        } else if body == b"QStartNoAckMode" && !self.sticky.contains(&body) {
            self.sticky.push(body);
        }
    }

    /// Answers `?` (asked once, on attaching) with the focus VM, so that gdb
    /// starts on the thread the user asked for. gdbstub would name the
    /// first thread it lists, and listing the focus first would renumber
    /// gdb's threads (gdb numbers them in the order of the first list).
    fn initial_stop(&mut self, sm: Stub) -> Result<Stub, GdbError> {
        let tid = tid_of(lock(&self.target.session).focus());
        let multiprocess = self
            .sticky
            .iter()
            .any(|p| p.starts_with(b"qSupported") && p.windows(13).any(|w| w == b"multiprocess+"));
        let thread = if multiprocess {
            format!("p1.{:x}", tid.get())
        } else {
            format!("{:x}", tid.get())
        };
        self.reply(&format!("T05thread:{thread};"))?;
        self.target.selected = tid;
        // gdb now reads registers and memory of that thread without saying
        // `Hg` first: tell gdbstub, quietly.
        let mut sm = sm;
        conn_of(&mut sm).muted = true;
        let result = self.push_bytes(sm, &encode(format!("Hg{:x}", tid.get()).as_bytes()));
        match result {
            Ok(mut sm) => {
                let conn = conn_of(&mut sm);
                conn.out.clear();
                conn.muted = false;
                self.target.general = Some(tid);
                Ok(sm)
            }
            Err(e) => self
                .recover(e, false)?
                .ok_or_else(|| GdbError::Stub("connection lost".into())),
        }
    }

    /// After gdbstub gave up on a packet: ends the connection if it is
    /// gone, else carries on with a fresh stub (and answers the packet with
    /// an error when `answer`).
    fn recover(&mut self, e: StubError, answer: bool) -> Result<Option<Stub>, GdbError> {
        if e.is_connection_error() {
            return Ok(None);
        }
        // Whatever the failed packet began to set up must not run later.
        self.target.resume = ResumeState::default();
        let sm = self.new_stub(true)?;
        if answer {
            self.reply("E01")?;
        }
        Ok(Some(sm))
    }

    /// gdbstub waits for a stop: run what gdb asked for and report it.
    fn run_pending(&mut self, sm: Stub) -> Result<Option<Stub>, GdbError> {
        let outcome = match self.target.resume.take_pending() {
            Some(request) => match self.execute(request) {
                Some(outcome) => outcome,
                None => return Ok(None),
            },
            // gdbstub resumed without a request (it should not): stop at once.
            None => Outcome::Stepped {
                vm: lock(&self.target.session).focus(),
            },
        };
        if let Outcome::Failed { message, .. } = &outcome {
            (self.log)(message);
            let _ = self.console(&format!("vmrr: {message}\n"));
        }
        let reason = self.target.stop_reason(&outcome);
        // gdb takes the thread of a stop as its selected thread.
        let stopped = match reason {
            MultiThreadStopReason::SignalWithThread { tid, .. }
            | MultiThreadStopReason::SwBreak(tid)
            | MultiThreadStopReason::HwBreak(tid)
            | MultiThreadStopReason::Watch { tid, .. }
            | MultiThreadStopReason::ReplayLog { tid: Some(tid), .. } => Some(tid),
            _ => None,
        };
        if let Some(tid) = stopped {
            self.target.general = Some(tid);
            self.target.selected = tid;
        }
        let GdbStubStateMachine::Running(gdb) = sm else {
            return Ok(Some(sm));
        };
        match gdb.report_stop(&mut self.target, reason) {
            Ok(mut sm) => match conn_of(&mut sm).send() {
                Ok(()) => Ok(Some(sm)),
                Err(_) => Ok(None),
            },
            Err(e) => {
                (self.log)(&format!("reporting a stop: {e}"));
                self.recover(e, false)
            }
        }
    }

    /// Runs `request` on a worker thread, watching the connection for
    /// Ctrl-C meanwhile. `None` if gdb went away.
    fn execute(&mut self, request: Request) -> Option<Outcome> {
        {
            let session = self.target.session.clone();
            let mut s = lock(&session);
            self.target.discard_writes(&mut s);
        }
        let session = self.target.session.clone();
        let tx = self.tx.clone();
        let worker = thread::spawn(move || {
            let progress_tx = tx.clone();
            let progress = move |f: f64| {
                let _ = progress_tx.send(Event::Progress(f));
            };
            let outcome =
                std::panic::catch_unwind(AssertUnwindSafe(|| resume::execute(&session, request, &progress)))
                    .unwrap_or_else(|_| Outcome::Failed {
                        vm: lock(&session).focus(),
                        message: "internal error: the move panicked; the session may need reopening".into(),
                    });
            let _ = tx.send(Event::Done(outcome));
        });
        let started = Instant::now();
        let mut last_note = started;
        let mut interrupted = false;
        let mut closed = false;
        let outcome = loop {
            let event = self.rx.recv_timeout(Duration::from_millis(50));
            // A continue clears the flag when it starts: keep it set until the
            // worker is done, whenever the Ctrl-C came.
            if interrupted {
                self.cancel.store(true, Ordering::Relaxed);
            }
            match event {
                Ok(Event::Done(outcome)) => break outcome,
                Ok(Event::Frame(Frame::Interrupt)) | Ok(Event::Closed) => {
                    closed |= matches!(event, Ok(Event::Closed));
                    interrupted = true;
                    self.cancel.store(true, Ordering::Relaxed);
                }
                Ok(Event::Frame(frame)) => self.queued.push_back(frame),
                Ok(Event::Progress(p)) => {
                    if !closed
                        && p < 1.0
                        && started.elapsed() > PROGRESS_AFTER
                        && last_note.elapsed() > PROGRESS_AFTER
                    {
                        last_note = Instant::now();
                        let _ = self.console(&format!(
                            "vmrr: searching, {:.0}% done (Ctrl-C stops it)\n",
                            (p * 100.0).clamp(0.0, 100.0)
                        ));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    break Outcome::Failed {
                        vm: 0,
                        message: "internal error: lost the worker".into(),
                    }
                }
            }
        };
        let _ = worker.join();
        self.cancel.store(false, Ordering::Relaxed);
        (!closed).then_some(outcome)
    }
}
