//! Connecting: the features vmrr offers, why the target "stopped" (it
//! always stands still between requests), and whether gdb attached or
//! started the processes.

use crate::proto::framing::PACKET_SIZE;
use crate::proto::reply::{Reason, StopReply, SIGTRAP};
use crate::state::{pid_of, Target};

impl Target {
    /// `qSupported`: what vmrr serves. Multiprocess extensions only when
    /// gdb offers them (gdb always does; a bare client then sees one
    /// thread per VM).
    pub(crate) fn supported(&mut self, features: &[String]) -> String {
        self.multiprocess = features.iter().any(|f| f == "multiprocess+");
        let mut reply = format!(
            "PacketSize={PACKET_SIZE:x};QStartNoAckMode+;qXfer:features:read+;qXfer:exec-file:read+;\
             qXfer:threads:read+;vContSupported+;swbreak+;hwbreak+;ReverseContinue+;ReverseStep+"
        );
        if self.multiprocess {
            reply.push_str(";multiprocess+");
        }
        reply
    }

    /// `?`: gdb asks once, on connecting. The first attached VM is named,
    /// whatever the focus: gdb makes the process of this first stop its
    /// inferior 1, and inferior N must be VM N (the moments vmrr parses
    /// number VMs that way). vmrr's gdb settings then select the focus VM.
    pub(crate) fn initial_stop(&mut self) -> String {
        let Some(&vm) = self.attached().first() else {
            return crate::proto::reply::error("every VM is detached: attach one with `attach N`");
        };
        self.general = vm;
        StopReply {
            signal: SIGTRAP,
            pid: pid_of(vm),
            tid: 1,
            reason: Reason::Signal,
        }
        .format(self.multiprocess)
    }

    /// `qAttached`: gdb attached to the VMs (it did not start them), so on
    /// quitting it detaches instead of killing them.
    pub(crate) fn attached_reply(&self, pid: Option<u64>) -> String {
        match pid {
            Some(pid) if self.vm_of_pid(pid).is_none() => {
                crate::proto::reply::error(&format!("no process {pid:x} in this trace"))
            }
            _ => "1".into(),
        }
    }
}
