//! One packet in, what to do about it out: the table from gdb's packets to
//! the target's areas.

use crate::areas::resume::Resume;
use crate::proto::packet::Packet;
use crate::state::Target;

/// What the connection does with a packet.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send these replies, in order (console packets, then the reply).
    Reply(Vec<Vec<u8>>),
    /// Reply `OK`, then stop sending and expecting acknowledgements.
    NoAck,
    /// Resume: run something and report a stop.
    Resume(Resume),
    /// End the connection (`k`).
    Close,
}

fn one(reply: impl Into<Vec<u8>>) -> Action {
    Action::Reply(vec![reply.into()])
}

/// Answers `packet` or says what else to do.
pub(crate) fn dispatch(target: &mut Target, packet: Packet) -> Action {
    match packet {
        Packet::Supported(features) => one(target.supported(&features)),
        Packet::NoAckMode => Action::NoAck,
        Packet::MustReplyEmpty | Packet::Unsupported => one(""),
        Packet::ExtendedMode | Packet::Symbol => one("OK"),
        Packet::StopReason => one(target.initial_stop()),
        Packet::SetThread(op, id) => one(target.set_thread(op, id)),
        Packet::ThreadAlive(id) => one(target.thread_alive(id)),
        Packet::CurrentThread => one(target.current_thread()),
        Packet::FirstThreads => one(target.thread_list()),
        Packet::NextThreads => one("l"),
        Packet::ThreadExtraInfo(id) => one(target.extra_info(id)),
        Packet::Attached(pid) => one(target.attached_reply(pid)),
        Packet::XferRead {
            object,
            annex,
            offset,
            length,
        } => one(target.xfer_read(&object, &annex, offset, length)),
        Packet::ReadRegisters => one(target.read_registers()),
        Packet::ReadRegister(n) => one(target.read_register(n)),
        Packet::WriteRegisters | Packet::WriteRegister(_) => one(target.refuse_register_write()),
        Packet::ReadMemory { addr, len } => one(target.read_memory(addr, len)),
        Packet::WriteMemory { addr, data } => one(target.write_memory(addr, &data)),
        Packet::InsertPoint(point) => one(target.insert_point(point)),
        Packet::RemovePoint(point) => one(target.remove_point(point)),
        Packet::VContQuery => one("vCont;c;C;s;S;r"),
        Packet::VCont(_)
        | Packet::Continue { .. }
        | Packet::Step { .. }
        | Packet::ReverseContinue
        | Packet::ReverseStep => match target.decode_resume(&packet) {
            Ok(resume) => Action::Resume(resume),
            Err(reply) => one(reply),
        },
        Packet::Detach(pid) => one(target.detach(pid)),
        Packet::Kill(pid) => one(target.kill(pid)),
        Packet::KillAll => Action::Close,
        Packet::Attach(pid) => one(target.attach(pid)),
        Packet::Run => one(target.refuse_run()),
        Packet::Monitor(command) => {
            Action::Reply(target.monitor(&command).into_iter().map(Into::into).collect())
        }
    }
}
