//! The origin of a value against brute force (`common::brute`): the
//! origin of backup2's `store[3] = 31` in the kvstore-bug demo goes through
//! kv_apply's store, the receive buffer, the frame from primary and
//! primary's transmit buffer, every link at the position where stepping
//! sees those bytes last change; within one VM (`guests/originprobe`) the
//! chain follows locals, a call and `rep movsb` to the image's data, and
//! stops at a computation of two sources. Needs /dev/kvm.

mod common;

use std::path::Path;

use common::brute::{brute_force, changes, last_change, Seen};
use vmrr_debugger::analysis::{LinkKind, OriginEnd, OriginTarget, Place};
use vmrr_debugger::session::{Session, VmId};
use vmrr_debugger::trace::Trace;

fn trace() -> &'static Path {
    common::kvstore_bug_trace()
}

#[test]
fn origin_of_the_stale_value_crosses_from_backup2_to_primary() {
    let mut s = Session::open(trace()).expect("open");
    let t = Trace::open(trace(), false).expect("trace");
    let backup2 = s.vm_by_name("backup2").expect("backup2");
    let primary = s.vm_by_name("primary").expect("primary");
    let store3 = common::kvstore_symbol("store") + 3 * 4;
    s.goto(backup2, s.end_icount(backup2)).expect("end");
    let target = OriginTarget::Memory { addr: store3, len: 4 };
    let o = s.origin(backup2, target.clone(), &|_| {}).expect("origin");
    assert_eq!(o.value, "0x1f");
    // The shape: kv_apply's store, ..., the card writing frame #N from
    // primary into a receive buffer, primary's card reading it from a
    // transmit buffer, the instruction that wrote it there, ...
    assert_eq!(o.links[0].function.as_deref(), Some("kv_apply+0x1a"));
    assert_eq!(o.links[0].line.as_deref(), Some("kvstore.c:369"));
    let r = o
        .links
        .iter()
        .position(|l| matches!(l.kind, LinkKind::Received { .. }))
        .expect("a received link");
    let LinkKind::Received { frame, from_vm } = o.links[r].kind else {
        unreachable!()
    };
    assert_eq!(from_vm, primary);
    let sent = &o.links[r + 1];
    assert!(matches!(sent.kind, LinkKind::Sent { frame: f, to_vm } if f == frame && to_vm == backup2));
    assert_eq!(sent.pos.vm, primary);
    let tx_writer = &o.links[r + 2];
    assert_eq!(tx_writer.pos.vm, primary);
    assert!(tx_writer
        .function
        .as_deref()
        .is_some_and(|f| f.starts_with("memcpy")));
    assert!(o.links[r + 2..].iter().all(|l| l.pos.vm == primary));
    assert!(matches!(o.end, OriginEnd::Initial(_)), "{:?}", o.end);

    // The frame's row: sent by primary at the Sent link's position,
    // received by backup2 at the Received link's, carrying 31 there.
    let rows = t.index().frame_receipts_of_send(frame).expect("frame rows");
    let row = rows.iter().find(|f| f.dst == backup2).expect("row to backup2");
    assert_eq!((row.src, row.sent_icount), (primary, sent.pos.icount));
    assert_eq!(row.recv_icount, Some(o.links[r].pos.icount));
    let Place::Frame { offset, len, .. } = sent.place else {
        panic!("{:?}", sent.place)
    };
    let recv = row.recv_icount.expect("received");
    let payload = t
        .inputs(backup2 as usize)
        .iter()
        .find(|i| i.icount == recv)
        .map(|i| i.frame.clone())
        .expect("the frame among backup2's inputs");
    assert_eq!(
        &payload[offset as usize..(offset + len) as usize],
        &31u32.to_le_bytes()[..len as usize]
    );

    // Each memory link against brute force: the last change of those
    // bytes before the position the previous link read them at.
    let check = |vm: VmId, links: Vec<(usize, u64)>| {
        let ranges: Vec<(u64, u64)> = links
            .iter()
            .map(|&(i, _)| match o.links[i].place {
                Place::Memory { pa, len, .. } => (pa, len),
                ref p => panic!("{p:?}"),
            })
            .collect();
        let seen = changes(&t, vm as usize, &ranges);
        for (k, &(i, before)) in links.iter().enumerate() {
            let want = last_change(&seen[k], before).expect("a change");
            let link = &o.links[i];
            let delivery = matches!(link.kind, LinkKind::Received { .. });
            assert_eq!((link.pos.icount, delivery), want, "link {i}: {link:?}");
        }
    };
    let memory_links = |vm: VmId| -> Vec<(usize, u64)> {
        (0..o.links.len())
            .filter(|&i| o.links[i].pos.vm == vm && matches!(o.links[i].place, Place::Memory { .. }))
            .map(|i| {
                (
                    i,
                    if i == 0 {
                        o.start.icount
                    } else {
                        o.links[i - 1].pos.icount
                    },
                )
            })
            .collect()
    };
    let b2 = memory_links(backup2);
    assert!(
        b2.len() >= 3,
        "store, the copy out of the receive buffer, the buffer: {b2:?}"
    );
    check(backup2, b2);
    check(primary, memory_links(primary));

    // Independently of the card's log: primary's transmit buffer is where
    // the frame lies in its memory at the send; the last change of the
    // value's bytes there is the instruction the chain names.
    let mut tx = None;
    brute_force(&t, primary as usize, |m, seen| {
        if tx.is_some() || !matches!(seen, Seen::Before) || m.icount() != sent.pos.icount {
            return;
        }
        let mut ram = vec![0u8; 8 << 20];
        m.read_phys(0, &mut ram);
        // The copy a transmit descriptor points at (header first): its
        // address and length as a `virtq_desc` somewhere in memory.
        let copies = ram
            .windows(payload.len())
            .enumerate()
            .filter(|(_, w)| *w == &payload[..]);
        let described: Vec<u64> = copies
            .map(|(p, _)| p as u64)
            .filter(|&p| {
                let mut desc = (p - 12).to_le_bytes().to_vec();
                desc.extend((payload.len() as u32 + 12).to_le_bytes());
                ram.chunks(16).any(|c| c.starts_with(&desc))
            })
            .collect();
        assert_eq!(
            described.len(),
            1,
            "one transmit buffer holds the frame: {described:x?}"
        );
        tx = described.first().copied();
    });
    let tx = tx.expect("the frame in primary's memory at the send");
    let seen = changes(&t, primary as usize, &[(tx + offset, len)]);
    assert_eq!(
        last_change(&seen[0], sent.pos.icount),
        Some((tx_writer.pos.icount, false)),
        "the write into the transmit buffer"
    );

    // Asked again: read back from the cache, the same chain.
    let again = s.origin(backup2, target, &|_| {}).expect("again");
    assert_eq!(again, o);
}

/// `guests/originprobe` in one VM (mode=0), recorded once per test binary.
fn originprobe_trace() -> &'static Path {
    static TRACE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    TRACE.get_or_init(|| {
        use std::sync::atomic::AtomicBool;
        use vmrr_debugger::cluster::ClusterConfig;
        use vmrr_debugger::trace::record::{record, RecordOptions};
        let image = vmrr_guests::image("originprobe");
        let dir = std::env::temp_dir().join(format!("vmrr-dbg-analysis-{}-probe", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let vm = vmrr_backend::VmConfig {
            cmdline: "mode=0".into(),
            ..Default::default()
        };
        let config = ClusterConfig::single(&image, vm).expect("config");
        // Small slices, so that the chain crosses several.
        let options = RecordOptions {
            checkpoint_every: 1000,
            ..RecordOptions::default()
        };
        record(&config, &dir, &options, &AtomicBool::new(false), &mut |_| {}).expect("record");
        dir
    })
}

#[test]
fn origin_within_one_vm_follows_locals_a_call_and_rep_movsb() {
    let dir = originprobe_trace();
    let mut s = Session::open(dir).expect("open");
    let t = Trace::open(dir, false).expect("trace");
    let symbols =
        vmrr_debugger::symbols::SymbolTable::load(&vmrr_guests::image("originprobe")).expect("symbols");
    let sym = |n: &str| symbols.by_name(n).map(|s| s.addr).expect(n);
    s.goto(0, s.end_icount(0)).expect("end");
    let o = s
        .origin(
            0,
            OriginTarget::Memory {
                addr: sym("result"),
                len: 4,
            },
            &|_| {},
        )
        .expect("origin");
    assert_eq!(o.value, "0x5eed1235");
    let names: Vec<&str> = o.links.iter().filter_map(|l| l.function.as_deref()).collect();
    // result = box_b.v + 1 (a transform), box_b filled by memcpy's rep
    // movsb from box_a, box_a.v from l3, l3 by hop() from l2, l2 from l1,
    // l1 from seed: the image's data.
    assert!(
        o.links.iter().any(|l| l.flow.starts_with("transform")),
        "{:?}",
        o.links
    );
    assert!(names.iter().any(|n| n.starts_with("memcpy")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("hop")), "{names:?}");
    let OriginEnd::Initial(why) = &o.end else {
        panic!("{:?}", o.end)
    };
    assert!(why.contains("seed"), "{why}");
    let rep = o
        .links
        .iter()
        .find(|l| l.what.contains("movsb"))
        .expect("rep movsb");
    assert!(matches!(rep.place, Place::Memory { va: Some(v), .. } if v == sym("box_b") + 8));
    // Every memory link where stepping sees the bytes last change before
    // the position the next link read them at.
    let links: Vec<(usize, u64)> = (0..o.links.len())
        .filter(|&i| matches!(o.links[i].place, Place::Memory { .. }))
        .map(|i| {
            (
                i,
                if i == 0 {
                    o.start.icount
                } else {
                    o.links[i - 1].pos.icount
                },
            )
        })
        .collect();
    assert!(links.len() >= 5, "result, box_b, box_a, l3, l2, l1: {links:?}");
    let ranges: Vec<(u64, u64)> = links
        .iter()
        .map(|&(i, _)| match o.links[i].place {
            Place::Memory { pa, len, .. } => (pa, len),
            _ => unreachable!(),
        })
        .collect();
    let seen = changes(&t, 0, &ranges);
    for (k, &(i, before)) in links.iter().enumerate() {
        assert_eq!(
            last_change(&seen[k], before),
            Some((o.links[i].pos.icount, false)),
            "link {i}: {:?}",
            o.links[i]
        );
    }
    // Two sources: the chain stops and names them.
    let mixed = s
        .origin(
            0,
            OriginTarget::Memory {
                addr: sym("mixed"),
                len: 4,
            },
            &|_| {},
        )
        .expect("origin of mixed");
    let OriginEnd::Mix { sources, .. } = &mixed.end else {
        panic!("{:?}", mixed.end)
    };
    assert_eq!(sources.len(), 2, "{sources:?}");
    // A register: the origin of what the last instruction left in RAX.
    let rax = s
        .origin(0, OriginTarget::Register("eax".into()), &|_| {})
        .expect("eax");
    assert!(!rax.links.is_empty());
    // Bad requests are named.
    let err = s
        .origin(0, OriginTarget::Register("xmm0".into()), &|_| {})
        .expect_err("not a register");
    assert!(err.to_string().contains("not a general register"), "{err}");
    let err = s
        .origin(
            0,
            OriginTarget::Memory {
                addr: 0xdead_0000_0000,
                len: 4,
            },
            &|_| {},
        )
        .expect_err("not mapped");
    assert!(err.to_string().contains("not mapped"), "{err}");
}
