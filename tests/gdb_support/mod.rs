//! Helpers of the gdb tests: recorded traces (the kvstore-bug demo, and a
//! cluster of two different images), a `vmrr gdb` server on a free port,
//! the real gdb in batch mode or reading commands from a pipe (so that it
//! shows prompts, and vmrr's settings print their notices), and a raw
//! remote-protocol client for malformed packets.
#![allow(dead_code)]

pub mod raw;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::VMRR;

pub use raw::{frame, hex, Raw};

/// The kvstore-bug trace, recorded once per test binary.
pub fn trace() -> &'static Path {
    crate::common::require_kvm();
    crate::demo::kvstore_bug_trace()
}

/// Address of `name` in the kvstore image, from its symbol table.
pub fn symbol(name: &str) -> u64 {
    crate::demo::kvstore_symbol(name)
}

/// A cluster of two different images, recorded once per test binary:
/// `ping` and `pong` run pingpong (two rounds), `calc` runs compute. The
/// images put different variables at the same addresses (compute's
/// `table` is where pingpong's `irq_handlers` is).
pub fn mixed_trace() -> &'static Path {
    static TRACE: OnceLock<PathBuf> = OnceLock::new();
    crate::common::require_kvm();
    TRACE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vmrr-gdb-mixed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the mixed cluster's folder");
        let pingpong = vmrr_guests::image("pingpong");
        let compute = vmrr_guests::image("compute");
        let cluster = format!(
            "seed = 1\n[network]\nlatency_us = 50\n\
             [[vm]]\nname = \"ping\"\nimage = \"{}\"\ncmdline = \"id=0 count=2\"\n\
             [[vm]]\nname = \"pong\"\nimage = \"{}\"\ncmdline = \"id=1 count=2\"\n\
             [[vm]]\nname = \"calc\"\nimage = \"{}\"\ncmdline = \"iters=3000\"\n",
            pingpong.display(),
            pingpong.display(),
            compute.display()
        );
        let file = dir.join("mixed.toml");
        std::fs::write(&file, cluster).expect("write the cluster file");
        let out = dir.join("trace");
        let o = Command::new(VMRR)
            .arg("record")
            .arg(&file)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("run vmrr record");
        assert!(
            o.status.success(),
            "vmrr record of the mixed cluster failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

/// A `vmrr gdb` server on a free port, killed when dropped.
pub struct Server {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Where it wrote gdb's settings.
    pub settings: PathBuf,
    /// What it printed on start.
    pub banner: String,
    /// The rest of its output (its log), read when asked for.
    stderr: Option<std::process::ChildStderr>,
}

impl Server {
    /// Starts a server over the kvstore-bug trace with `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_on(trace(), extra)
    }

    /// Starts a server over `trace` with `extra` arguments.
    pub fn start_on(trace: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(VMRR)
            .arg("gdb")
            .arg(trace)
            .args(["--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vmrr gdb");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        for _ in 0..3 {
            match lines.next() {
                Some(Ok(l)) => {
                    banner += &l;
                    banner.push('\n');
                }
                _ => break,
            }
        }
        let port = banner
            .split_whitespace()
            .find_map(|w| w.strip_prefix("127.0.0.1:"))
            .and_then(|p| p.parse::<u16>().ok());
        let settings = banner
            .split(" -x ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(PathBuf::from);
        let (Some(port), Some(settings)) = (port, settings) else {
            let _ = child.kill();
            panic!("no port or settings in vmrr gdb's banner:\n{banner}");
        };
        let stderr = child.stderr.take();
        Server {
            child,
            port,
            settings,
            banner,
            stderr,
        }
    }

    /// The arguments that attach gdb with vmrr's settings (as printed).
    fn attach_args(&self) -> Vec<String> {
        [
            "-nx",
            "-ex",
            "set pagination off",
            "-ex",
            "set width 0",
            "-ex",
            "set confirm off",
            "-ex",
            "set sysroot /",
            "-ex",
            "set schedule-multiple on",
            "-ex",
            &format!("target extended-remote 127.0.0.1:{}", self.port),
            "-x",
            &self.settings.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Runs gdb in batch mode against this server with vmrr's settings,
    /// then `commands` in order; returns everything gdb printed.
    pub fn gdb(&self, commands: &[&str]) -> String {
        let mut cmd = Command::new("gdb");
        cmd.arg("-batch").args(self.attach_args());
        for c in commands {
            cmd.arg("-ex").arg(c);
        }
        run_merged(&mut cmd, None, Duration::from_secs(120))
    }

    /// Runs gdb reading `commands` from a pipe, as a person types them:
    /// gdb shows its prompts, so vmrr's settings run before each one (and
    /// print the notices no reply can carry).
    pub fn gdb_typed(&self, commands: &[&str]) -> String {
        let mut cmd = Command::new("gdb");
        cmd.arg("-q").args(self.attach_args());
        let mut input = commands.join("\n");
        input.push_str("\nquit\n");
        run_merged(&mut cmd, Some(input), Duration::from_secs(120))
    }

    /// Runs gdb in batch mode with only the connection (no vmrr settings).
    pub fn gdb_bare(&self, commands: &[&str]) -> String {
        let mut cmd = Command::new("gdb");
        cmd.args(["-batch", "-nx", "-ex", "set pagination off", "-ex", "set width 0"])
            .arg("-ex")
            .arg(format!("target extended-remote 127.0.0.1:{}", self.port));
        for c in commands {
            cmd.arg("-ex").arg(c);
        }
        run_merged(&mut cmd, None, Duration::from_secs(120))
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server and returns its log.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut log = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut log);
        }
        log
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` with stdout and stderr into one pipe (gdb prints `monitor`
/// output and errors on stderr, and the order matters), `input` on its
/// stdin; kills it after `timeout`.
pub fn run_merged(cmd: &mut Command, input: Option<String>, timeout: Duration) -> String {
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let writer2 = writer.try_clone().expect("pipe clone");
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // The parent's copies of the write end are gone with `cmd`'s: drop them
    // so that the read ends when the child exits.
    let command = format!("{cmd:?}");
    *cmd = Command::new("true");
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    let collector = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let text = collector.join().unwrap_or_default();
                panic!("timed out after {timeout:?}: {command}\n{text}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    }
    collector.join().unwrap_or_default()
}

/// The text between two marker lines gdb echoed (`echo` commands).
pub fn between<'a>(output: &'a str, from: &str, to: &str) -> &'a str {
    let start = output
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in gdb output:\n{output}"));
    let rest = &output[start + from.len()..];
    let end = rest
        .find(to)
        .unwrap_or_else(|| panic!("no {to:?} after {from:?} in gdb output:\n{output}"));
    &rest[..end]
}

/// The lines of gdb's `info registers` output, keyed by register name.
pub fn registers(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let value = words.next()?;
            value
                .starts_with("0x")
                .then(|| (name.to_string(), value.to_string()))
        })
        .collect()
}

/// The stop lines gdb printed (`Thread N.1 "name" hit …`), in order.
pub fn stops(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with("Thread ") && l.contains(" hit "))
        .map(str::to_string)
        .collect()
}

/// A terminal (tmux) running a command, killed when dropped.
pub struct Terminal {
    name: String,
}

impl Terminal {
    /// Starts `command` (a shell command line) in a detached tmux session.
    pub fn start(command: &str) -> Terminal {
        let name = format!("vmrr-gdb-test-{}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "200",
                "-y",
                "50",
            ])
            .arg(command)
            .status()
            .expect("run tmux (scripts/install-deps.sh installs it)");
        assert!(ok.success(), "tmux new-session failed");
        Terminal { name }
    }

    /// The screen's text.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-S", "-200", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter.
    pub fn type_line(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux send-keys");
        assert!(ok.success());
        let _ = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "Enter"])
            .status();
    }

    /// Waits until the screen holds `needle` `count` times; panics with the
    /// screen after `timeout`.
    pub fn wait_for(&self, needle: &str, count: usize, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.matches(needle).count() >= count {
                return screen;
            }
            if started.elapsed() > timeout {
                panic!("no {needle:?} (x{count}) on the screen after {timeout:?}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}
