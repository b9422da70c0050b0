//! `vmrr pcap`: a trace's frames as a pcapng capture that Wireshark,
//! tshark and tcpdump open.
//!
//! The capture is what a tap on the switch would see: one interface per
//! VM's link (interface N is VM N, named after it, with its MAC), and each
//! frame once, on the link it entered the switch from, stamped with its
//! send's virtual time in nanoseconds (`if_tsresol` = 9; the clock starts
//! at the epoch, so `frame.time_epoch` is the virtual time). A frame that
//! did not reach a receiver (a partition, a drop fault, a full NIC) carries
//! a comment saying which and why; Wireshark shows it under the packet's
//! comments and its expert info.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness};
use vmrr_index::{FrameFate, FrameRow, Index, IndexError, VmId, VmRow, PACKET_BYTES_CAP};

/// `if_tsresol` for nanoseconds: 10^-9.
const NANOSECONDS: u8 = 9;
/// `epb_flags` direction bits: outbound (the frame leaves the VM on its link).
const OUTBOUND: u32 = 0b10;

/// Which frames go into the capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcapFilter {
    /// Only frames this VM sent or was sent.
    pub vm: Option<VmId>,
    /// Only frames sent at or after this virtual time.
    pub from_ns: u64,
    /// Only frames sent before this virtual time (`None`: to the end).
    pub to_ns: Option<u64>,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcapSummary {
    /// Frames written.
    pub frames: u64,
    /// Of those, frames that did not reach every receiver (commented).
    pub lost: u64,
}

/// Why a capture could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Writing the capture failed (a full disk, a closed pipe).
    #[error("writing the capture: {source}")]
    Write {
        /// What the pcapng writer said.
        #[source]
        source: pcap_file::PcapError,
    },
    /// The trace keeps no frames' bytes (recorded before schema 3) although
    /// it has frames.
    #[error(
        "this trace keeps no frames' bytes (it was recorded by a vmrr before schema 3): record it again \
         to export its frames"
    )]
    NoPackets,
}

fn write_err(source: pcap_file::PcapError) -> PcapError {
    PcapError::Write { source }
}

/// A VM's MAC as its six bytes (`52:54:00:12:34:01`), if it reads as one.
fn mac_bytes(text: &str) -> Option<Vec<u8>> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    (bytes.len() == 6).then_some(bytes)
}

/// The comment of a frame that did not reach every receiver: `lost on the
/// way to replica2: cut off by a partition`.
fn loss_comment(rows: &[&FrameRow], name: &dyn Fn(VmId) -> String) -> Option<String> {
    let lost: Vec<String> = rows
        .iter()
        .filter(|f| f.fate != FrameFate::Received)
        .map(|f| {
            let why = match f.fate {
                FrameFate::Partitioned => "cut off by a partition",
                FrameFate::Dropped => "dropped by a drop fault",
                FrameFate::Overflow => "the receiver's NIC had no room",
                FrameFate::ReceiverStopped => "the receiver had stopped",
                FrameFate::InFlight => "still in flight when the recording ended",
                FrameFate::Received => "received",
            };
            format!("lost on the way to {}: {why}", name(f.dst))
        })
        .collect();
    (!lost.is_empty()).then(|| lost.join("; "))
}

/// Writes the frames of the trace indexed by `index` that pass `filter`
/// to `out` as pcapng. `trace` names the trace in the capture's comment.
pub fn write_pcapng<W: Write>(
    index: &Index,
    trace: &str,
    filter: &PcapFilter,
    out: W,
) -> Result<PcapSummary, PcapError> {
    let vms: Vec<VmRow> = index.vms()?;
    let name = |id: VmId| {
        vms.iter()
            .find(|v| v.id == id)
            .map_or_else(|| format!("vm{id}"), |v| v.name.clone())
    };
    let packets = index.packets_in_window(filter.from_ns, filter.to_ns.unwrap_or(u64::MAX), usize::MAX)?;
    if packets.is_empty() && index.packet_count()? == 0 && index.stats()?.frames > 0 {
        return Err(PcapError::NoPackets);
    }
    let mut edges: BTreeMap<u64, Vec<FrameRow>> = BTreeMap::new();
    for f in index.frame_edges(usize::MAX)? {
        edges.entry(f.id).or_default().push(f);
    }
    let section = SectionHeaderBlock {
        endianness: Endianness::Little,
        options: vec![
            SectionHeaderOption::UserApplication(Cow::Owned(format!("vmrr {}", env!("CARGO_PKG_VERSION")))),
            SectionHeaderOption::Comment(Cow::Owned(format!(
                "vmrr trace {trace}: virtual time (the epoch is the start of the recording), one interface \
                 per VM's link"
            ))),
        ],
        ..Default::default()
    };
    let mut writer = PcapNgWriter::with_section_header(out, section).map_err(write_err)?;
    // Interface N is VM N, so a frame's interface id is its sender's id.
    let last = vms.iter().map(|v| v.id).max().map_or(0, |m| m + 1);
    for id in 0..last {
        let mut options = vec![
            InterfaceDescriptionOption::IfName(Cow::Owned(name(id))),
            InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                "vmrr: the link of VM {}",
                name(id)
            ))),
            InterfaceDescriptionOption::IfTsResol(NANOSECONDS),
        ];
        if let Some(mac) = vms.iter().find(|v| v.id == id).and_then(|v| mac_bytes(&v.mac)) {
            options.push(InterfaceDescriptionOption::IfMacAddr(Cow::Owned(mac)));
        }
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: DataLink::ETHERNET,
                snaplen: PACKET_BYTES_CAP as u32,
                options,
            })
            .map_err(write_err)?;
    }
    let mut summary = PcapSummary::default();
    for p in &packets {
        let rows: Vec<&FrameRow> = edges.get(&p.id).map(|r| r.iter().collect()).unwrap_or_default();
        if let Some(vm) = filter.vm {
            if p.src != vm && !rows.iter().any(|f| f.dst == vm) {
                continue;
            }
        }
        let mut options = vec![EnhancedPacketOption::Flags(OUTBOUND)];
        if let Some(comment) = loss_comment(&rows, &name) {
            options.push(EnhancedPacketOption::Comment(Cow::Owned(comment)));
            summary.lost += 1;
        }
        if p.is_cut() {
            options.push(EnhancedPacketOption::Comment(Cow::Owned(format!(
                "vmrr kept the first {} of its {} bytes",
                p.bytes.len(),
                p.len
            ))));
        }
        writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: p.src,
                timestamp: Duration::from_nanos(p.sent_vtime_ns),
                original_len: p.len,
                data: Cow::Borrowed(&p.bytes),
                options,
            })
            .map_err(write_err)?;
        summary.frames += 1;
    }
    writer
        .get_mut()
        .flush()
        .map_err(|e| write_err(pcap_file::PcapError::IoError(e)))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_loss_comments() {
        assert_eq!(
            mac_bytes("52:54:00:12:34:01"),
            Some(vec![0x52, 0x54, 0, 0x12, 0x34, 1])
        );
        assert_eq!(mac_bytes("nonsense"), None);
        let row = |dst, fate| FrameRow {
            id: 1,
            src: 0,
            dst,
            len: 60,
            sent_icount: 1,
            sent_vtime_ns: 1,
            arrival_ns: 2,
            recv_icount: None,
            recv_vtime_ns: None,
            fate,
            payload: None,
        };
        let (a, b) = (row(1, FrameFate::Received), row(2, FrameFate::Partitioned));
        let name = |id: VmId| format!("vm{id}");
        assert_eq!(loss_comment(&[&a], &name), None);
        assert_eq!(
            loss_comment(&[&a, &b], &name).as_deref(),
            Some("lost on the way to vm2: cut off by a partition")
        );
    }
}
