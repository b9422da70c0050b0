//! The server: one gdb at a time on a listening socket (a second client is
//! refused at once, with a message gdb prints), and the loop of one
//! connection.
//!
//! Three threads take part in a connection: a reader that frames what gdb
//! sends, the loop that answers, and (while the target "runs") a worker
//! that moves the session. Reader and worker report through one channel,
//! so the loop waits on a single queue whatever happens first, and a
//! Ctrl-C from gdb reaches the running search at once.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vmrr_debugger::session::Session;

use crate::areas::resume::{Resume, Started, Stop};
use crate::dispatch::{dispatch, Action};
use crate::proto::framing::{encode, Frame, Framer, PACKET_SIZE};
use crate::proto::packet::Packet;
use crate::proto::reply::{console, error};
use crate::run::{self, Ran};
use crate::state::{lock, Target};
use crate::{GdbError, Logger, ServeOptions};

/// How long a search runs before gdb's console shows its progress.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// How long a refused second client may take to send its first packet.
const REFUSE_WAIT: Duration = Duration::from_secs(5);

/// Serves gdb on `listener` until the listener fails.
pub(crate) fn serve(
    session: Arc<Mutex<Session>>,
    listener: TcpListener,
    options: &ServeOptions,
) -> Result<(), GdbError> {
    // The peer being served, if any.
    let busy: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            // A connection that failed before it was accepted (reset,
            // aborted): the next one may be fine.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => return Err(GdbError::Io(e)),
        };
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        let log = options.log.clone();
        let mut current = busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(holder) = current.clone() {
            log(&format!("refused a second gdb from {peer}: {holder} is attached"));
            thread::spawn(move || refuse(stream, &holder));
            continue;
        }
        *current = Some(peer.clone());
        drop(current);
        let (session, busy) = (session.clone(), busy.clone());
        thread::spawn(move || {
            log(&format!("gdb connected from {peer}"));
            match serve_connection(session, stream, log.clone()) {
                Ok(()) => log(&format!("gdb from {peer} disconnected")),
                Err(e) => log(&format!("gdb from {peer}: {e}")),
            }
            *busy.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
    }
    Ok(())
}

/// Answers a second client's first packet with an error naming the first,
/// and closes: gdb prints "Remote failure reply: E.…" and gives up at once
/// instead of waiting for a connection that is not served.
fn refuse(mut stream: TcpStream, holder: &str) {
    let _ = stream.set_read_timeout(Some(REFUSE_WAIT));
    let mut framer = Framer::default();
    let mut buf = [0u8; 1024];
    'wait: while let Ok(n @ 1..) = stream.read(&mut buf) {
        for &b in &buf[..n] {
            if let Some(Frame::Packet(_)) = framer.push(b) {
                break 'wait;
            }
        }
    }
    let text = error(&format!(
        "vmrr serves one gdb at a time, and the gdb at {holder} is attached to this trace: \
         detach or quit it first"
    ));
    let mut out = b"+".to_vec();
    out.extend(encode(text.as_bytes()));
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(Shutdown::Both);
}

/// Something for the connection loop to act on.
enum Event {
    /// A unit of what gdb sent.
    Frame(Frame),
    /// gdb closed the connection.
    Closed,
    /// The worker finished a resume.
    Done(Ran),
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
struct Connection {
    stream: TcpStream,
    target: Target,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Frames that arrived while the target ran (gdb sends none but
    /// Ctrl-C; another client might).
    queued: VecDeque<Frame>,
    /// Whether gdb switched acknowledgements off.
    no_ack: bool,
    cancel: Arc<AtomicBool>,
    log: Logger,
}

/// Serves one accepted gdb connection until gdb detaches everything or
/// goes away. The breakpoints and watchpoints it set leave the session
/// when it ends.
pub(crate) fn serve_connection(
    session: Arc<Mutex<Session>>,
    stream: TcpStream,
    log: Logger,
) -> Result<(), GdbError> {
    // Small packets, one at a time: do not let Nagle hold them back.
    stream.set_nodelay(true)?;
    let (tx, rx) = mpsc::channel();
    let reader = spawn_reader(stream.try_clone()?, tx.clone());
    let cancel = lock(&session).cancel_flag();
    let mut conn = Connection {
        stream,
        target: Target::new(session, log.clone()),
        tx,
        rx,
        queued: VecDeque::new(),
        no_ack: false,
        cancel,
        log,
    };
    let result = conn.run();
    conn.target.cleanup();
    let _ = conn.stream.shutdown(Shutdown::Both);
    let _ = reader.join();
    result
}

impl Connection {
    fn run(&mut self) -> Result<(), GdbError> {
        while let Some(frame) = self.next_frame() {
            let body = match frame {
                // Nothing runs: there is nothing to interrupt.
                Frame::Interrupt => continue,
                Frame::Corrupt => {
                    if !self.no_ack {
                        self.stream.write_all(b"-")?;
                    }
                    continue;
                }
                Frame::TooLong => {
                    self.ack()?;
                    self.send(error(&format!("packet longer than {PACKET_SIZE} bytes")))?;
                    continue;
                }
                Frame::Packet(body) => body,
            };
            self.ack()?;
            let action = match Packet::parse(&body) {
                Ok(packet) => dispatch(&mut self.target, packet),
                Err(e) => {
                    (self.log)(&format!(
                        "{e}: '{}'",
                        String::from_utf8_lossy(&body)
                            .chars()
                            .take(80)
                            .collect::<String>()
                    ));
                    Action::Reply(vec![error(&e.to_string()).into_bytes()])
                }
            };
            match action {
                Action::Reply(replies) => {
                    for reply in replies {
                        self.send(&reply)?;
                    }
                }
                Action::NoAck => {
                    self.send(b"OK")?;
                    self.no_ack = true;
                }
                Action::Resume(resume) => {
                    let stop = match self.target.start_resume(resume) {
                        Started::Now(stop) => stop,
                        Started::Run(resume) => match self.execute(&resume) {
                            Some(ran) => self.target.finish_resume(&resume, ran),
                            None => return Ok(()),
                        },
                    };
                    self.send_stop(&stop)?;
                }
                Action::Close => return Ok(()),
            }
        }
        Ok(())
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

    /// Acknowledges a packet, unless gdb switched acknowledgements off.
    fn ack(&mut self) -> std::io::Result<()> {
        if self.no_ack {
            Ok(())
        } else {
            self.stream.write_all(b"+")
        }
    }

    /// Sends one reply packet.
    fn send(&mut self, body: impl AsRef<[u8]>) -> std::io::Result<()> {
        self.stream.write_all(&encode(body.as_ref()))
    }

    /// Sends a stop: the console notes first, then the stop reply.
    fn send_stop(&mut self, stop: &Stop) -> std::io::Result<()> {
        for note in &stop.notes {
            self.send(console(note))?;
        }
        self.send(&stop.reply)
    }

    /// Runs `resume` on a worker thread, watching the connection for
    /// Ctrl-C meanwhile. `None` if gdb went away.
    fn execute(&mut self, resume: &Resume) -> Option<Ran> {
        let session = self.target.session.clone();
        let tx = self.tx.clone();
        let request = resume.request;
        let worker = thread::spawn(move || {
            let progress_tx = tx.clone();
            let progress = move |f: f64| {
                let _ = progress_tx.send(Event::Progress(f));
            };
            let ran =
                std::panic::catch_unwind(AssertUnwindSafe(|| run::execute(&session, request, &progress)))
                    .unwrap_or_else(|_| {
                        Ran::Failed(
                            "internal error: the move panicked; the session may need reopening".into(),
                        )
                    });
            let _ = tx.send(Event::Done(ran));
        });
        let started = Instant::now();
        let mut last_note = started;
        let mut interrupted = false;
        let mut closed = false;
        let ran = loop {
            let event = self.rx.recv_timeout(Duration::from_millis(50));
            // A continue clears the flag when it starts: keep it set until
            // the worker is done, whenever the Ctrl-C came.
            if interrupted {
                self.cancel.store(true, Ordering::Relaxed);
            }
            match event {
                Ok(Event::Done(ran)) => break ran,
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
                        let _ = self.send(console(&format!(
                            "vmrr: searching, {:.0}% done (Ctrl-C stops it)\n",
                            (p * 100.0).clamp(0.0, 100.0)
                        )));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    break Ran::Failed("internal error: lost the worker".into());
                }
            }
        };
        let _ = worker.join();
        self.cancel.store(false, Ordering::Relaxed);
        (!closed).then_some(ran)
    }
}
