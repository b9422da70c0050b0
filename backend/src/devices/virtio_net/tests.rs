//! The device's behaviour seen through the fake driver: identification and
//! features, the status machine, transmit and receive, interrupts, the
//! receive backlog, resets and driver errors.

use super::test_driver::*;
use super::*;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::{
    VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use vm_memory::GuestAddress;

#[test]
fn identification_and_features() {
    let mut d = Driver::new(16);
    assert_eq!(d.r32(VIRTIO_MMIO_MAGIC_VALUE), u32::from_le_bytes(*b"virt"));
    assert_eq!(d.r32(VIRTIO_MMIO_VERSION), 2);
    assert_eq!(d.r32(VIRTIO_MMIO_DEVICE_ID), 1);
    assert_ne!(d.r32(VIRTIO_MMIO_VENDOR_ID), 0);
    let f = d.device_features();
    assert_eq!(f, (1 << 32) | (1 << 5));
    d.w32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
    assert_eq!(d.r32(VIRTIO_MMIO_DEVICE_FEATURES), 0);
    // Queues 0 and 1 exist, queue 2 does not.
    for (q, max) in [(0, 256), (1, 256), (2, 0), (0xffff_ffff, 0)] {
        d.w32(VIRTIO_MMIO_QUEUE_SEL, q);
        assert_eq!(d.r32(VIRTIO_MMIO_QUEUE_NUM_MAX), max);
    }
    assert_eq!(d.r32(VIRTIO_MMIO_CONFIG_GENERATION), 0);
    assert_eq!(d.r32(VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX);
    assert_eq!(d.r32(VIRTIO_MMIO_SHM_LEN_HIGH), u32::MAX);
    assert_eq!(VirtioNet::cmdline_token(), "virtio_mmio.device=4K@0xd0000000:5");
}

#[test]
fn config_space_holds_the_mac() {
    let mut d = Driver::new(16);
    // Byte by byte, as virtio_cread_bytes does.
    let mac: Vec<u8> = (0..6)
        .map(|i| {
            let mut b = [0u8; 1];
            d.net.mmio_read(0x100 + i, &mut b);
            b[0]
        })
        .collect();
    assert_eq!(mac, MAC);
    // Wider reads, and what lies past the MAC.
    let mut w = [0xaau8; 8];
    d.net.mmio_read(0x100, &mut w);
    assert_eq!(w, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0]);
    let mut w = [0xaau8; 4];
    d.net.mmio_read(0x104, &mut w);
    assert_eq!(w, [0x34, 0x56, 0, 0]);
    d.net.mmio_read(0xffc, &mut w);
    assert_eq!(w, [0; 4]);
    // The MAC is read-only in the modern interface.
    d.net.mmio_write(&d.mem, 0x100, &[1, 2, 3, 4]);
    let mut b = [0u8; 6];
    d.net.mmio_read(0x100, &mut b);
    assert_eq!(b, MAC);
    assert_eq!(d.net.mac(), MAC);
}

#[test]
fn init_sequence_reaches_driver_ok() {
    let d = Driver::ready(16);
    assert_eq!(d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

#[test]
fn features_ok_requires_version_1() {
    let mut d = Driver::new(16);
    assert!(!d.negotiate(1 << VIRTIO_NET_F_MAC));
    assert_eq!(d.status(), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    // A feature the device does not offer (EVENT_IDX) is refused too.
    assert!(!d.negotiate(FEATURES | (1 << 29)));
    // VERSION_1 alone is enough: MAC is optional for the driver.
    assert!(d.negotiate(1 << VIRTIO_F_VERSION_1));
    // A retry after a refusal works without a reset as well.
    let mut d = Driver::new(16);
    assert!(!d.negotiate(0));
    d.write_features(FEATURES);
    d.add_status(VIRTIO_CONFIG_S_FEATURES_OK);
    assert_ne!(d.status() & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    // Once FEATURES_OK is set, feature writes are ignored.
    d.write_features(0);
    assert_eq!(d.net.transport.driver_features(), FEATURES);
    // The driver may give up: FAILED is kept and the device stays idle.
    d.add_status(VIRTIO_CONFIG_S_FAILED);
    assert!(!d.net.driver_ready());
}

#[test]
fn driver_ok_without_features_ok_needs_reset() {
    let mut d = Driver::new(16);
    d.add_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
    assert_eq!(d.status() & VIRTIO_CONFIG_S_DRIVER_OK, 0);
    assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    assert!(!d.net.driver_ready());
    // Reset recovers.
    d.init();
}

#[test]
fn status_bits_cannot_be_cleared_without_reset() {
    let mut d = Driver::ready(16);
    let before = d.status();
    d.w32(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    assert_eq!(d.status(), before);
    // Nor can the driver set NEEDS_RESET itself.
    d.w32(VIRTIO_MMIO_STATUS, before | VIRTIO_CONFIG_S_NEEDS_RESET);
    assert_eq!(d.status(), before);
}

#[test]
fn odd_register_accesses_are_harmless() {
    let mut d = Driver::ready(16);
    d.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
    let state = d.net.state();
    // Unaligned and narrow register accesses read as zero and write nothing.
    for (off, len) in [(0u64, 1usize), (0, 2), (1, 4), (0x70, 2), (0x70, 8), (0x72, 4)] {
        let mut b = vec![0xffu8; len];
        d.net.mmio_read(off, &mut b);
        assert!(b.iter().all(|&x| x == 0), "read {off:#x}/{len}");
        d.net.mmio_write(&d.mem, off, &vec![0u8; len]);
    }
    // Writes to read-only registers are ignored.
    for off in [
        0x000, 0x004, 0x008, 0x00c, 0x010, 0x034, 0x060, 0x0fc, 0x0ac, 0x0b0,
    ] {
        d.w32(off, 0);
    }
    // Reads of write-only registers are zero.
    for off in [0x014, 0x020, 0x024, 0x030, 0x038, 0x050, 0x064, 0x080, 0x0a4] {
        let _ = d.r32(off);
    }
    d.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(d.net.state().transport, state.transport);
    assert!(!d.net.take_irq());
}

#[test]
fn transmit_collects_frames_in_order() {
    let mut d = Driver::ready(16);
    let f1 = frame(1, 60);
    let f2 = frame(2, MAX_FRAME_LEN);
    let h1 = d.queue_tx(&f1);
    let h2 = d.queue_tx(&f2);
    // Nothing happens before the notification.
    assert!(d.net.take_tx().is_empty());
    d.notify(TX_QUEUE);
    assert_eq!(d.net.take_tx(), vec![f1, f2]);
    assert!(d.net.take_tx().is_empty());
    assert_eq!(d.used(TX_QUEUE), vec![(u32::from(h1), 0), (u32::from(h2), 0)]);
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    assert!(d.net.take_irq());
    assert!(!d.net.take_irq());
    assert_eq!(d.ack(), 1);
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert_eq!(d.net.counters().tx_frames, 2);
}

#[test]
fn transmit_chain_split_across_descriptors() {
    let mut d = Driver::ready(16);
    let f = frame(7, 300);
    let packet = header_then(&f);
    // Header alone, then the frame in two unequal pieces, scattered in memory.
    let parts = [
        (0x30_0000u64, 0..12usize),
        (0x30_1000, 12..100),
        (0x30_0800, 100..packet.len()),
    ];
    let bufs: Vec<Buf> = parts
        .iter()
        .map(|(addr, r)| {
            d.mem
                .write_slice(&packet[r.clone()], GuestAddress(*addr))
                .unwrap();
            Buf {
                addr: *addr,
                len: r.len() as u32,
                writable: false,
            }
        })
        .collect();
    let head = d.add_chain(TX_QUEUE, &bufs);
    d.notify(TX_QUEUE);
    assert_eq!(d.net.take_tx(), vec![f]);
    assert_eq!(d.used(TX_QUEUE), vec![(u32::from(head), 0)]);
}

#[test]
fn bad_transmit_chains_are_dropped_and_returned() {
    let mut d = Driver::ready(16);
    // Too big: 1515-byte frame.
    let big = header_then(&frame(1, MAX_FRAME_LEN + 1));
    d.mem.write_slice(&big, GuestAddress(0x30_0000)).unwrap();
    let h_big = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: big.len() as u32,
            writable: false,
        }],
    );
    // Shorter than header + Ethernet header.
    let h_runt = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: 20,
            writable: false,
        }],
    );
    // A device-writable descriptor in a transmit chain.
    let h_w = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: 100,
            writable: true,
        }],
    );
    // Outside guest RAM.
    let h_out = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: MEM_SIZE as u64 - 50,
            len: 100,
            writable: false,
        }],
    );
    // A huge length that must not be allocated.
    let h_huge = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: 0,
            len: u32::MAX,
            writable: false,
        }],
    );
    // And a good one after them.
    let good = frame(2, 64);
    let h_good = d.queue_tx(&good);
    d.notify(TX_QUEUE);
    assert_eq!(d.net.take_tx(), vec![good]);
    let heads: Vec<u32> = d.used(TX_QUEUE).iter().map(|&(id, _)| id).collect();
    assert_eq!(heads, [h_big, h_runt, h_w, h_out, h_huge, h_good].map(u32::from));
    let c = d.net.counters();
    assert_eq!((c.tx_frames, c.tx_oversize, c.tx_malformed), (1, 2, 3));
    assert_eq!(d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

#[test]
fn receive_writes_header_and_frame() {
    let mut d = Driver::ready(16);
    let (head, addr) = d.post_rx(1526);
    d.notify(RX_QUEUE);
    assert!(!d.net.take_irq());
    let f = frame(3, 98);
    assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
    assert_eq!(
        d.used(RX_QUEUE),
        vec![(u32::from(head), (NET_HDR_LEN + 98) as u32)]
    );
    assert_eq!(d.read(addr, NET_HDR_LEN + 98), expected_rx(&f));
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    assert!(d.net.take_irq());
    assert!(!d.net.take_irq());
    assert_eq!(d.net.counters().rx_delivered, 1);
}

#[test]
fn receive_scatters_over_a_chain() {
    let mut d = Driver::ready(16);
    // Linux-style: a header-sized buffer, then data buffers.
    let bufs = [
        Buf {
            addr: 0x30_0000,
            len: 12,
            writable: true,
        },
        Buf {
            addr: 0x30_1000,
            len: 1000,
            writable: true,
        },
        Buf {
            addr: 0x30_2000,
            len: 1000,
            writable: true,
        },
    ];
    let head = d.add_chain(RX_QUEUE, &bufs);
    d.notify(RX_QUEUE);
    let f = frame(4, 1500);
    assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
    let want = expected_rx(&f);
    let mut got = d.read(0x30_0000, 12);
    got.extend(d.read(0x30_1000, 1000));
    got.extend(d.read(0x30_2000, want.len() - 1012));
    assert_eq!(got, want);
    assert_eq!(d.used(RX_QUEUE), vec![(u32::from(head), want.len() as u32)]);
}

#[test]
fn receive_into_bad_buffers_drops_the_frame() {
    let mut d = Driver::ready(16);
    let (h_small, _) = d.post_rx(100);
    let h_ro = d.add_chain(
        RX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: 2000,
            writable: false,
        }],
    );
    let h_out = d.add_chain(
        RX_QUEUE,
        &[Buf {
            addr: MEM_SIZE as u64 - 10,
            len: 2000,
            writable: true,
        }],
    );
    let h_wrap = d.add_chain(
        RX_QUEUE,
        &[Buf {
            addr: u64::MAX - 5,
            len: 2000,
            writable: true,
        }],
    );
    d.notify(RX_QUEUE);
    for _ in 0..4 {
        assert_eq!(d.net.receive(&d.mem, &frame(5, 200)), RxOutcome::Dropped);
    }
    // Each buffer goes back empty, with an interrupt.
    assert_eq!(
        d.used(RX_QUEUE),
        [h_small, h_ro, h_out, h_wrap].map(|h| (u32::from(h), 0)).to_vec()
    );
    assert!(d.net.take_irq());
    assert_eq!(d.net.counters().rx_bad_buffer, 4);
    // Frames of invalid size never reach the queue.
    let (h, _) = d.post_rx(2000);
    d.notify(RX_QUEUE);
    assert_eq!(
        d.net.receive(&d.mem, &frame(0, MAX_FRAME_LEN + 1)),
        RxOutcome::Dropped
    );
    assert_eq!(d.net.receive(&d.mem, &frame(0, 13)), RxOutcome::Dropped);
    assert_eq!(d.net.counters().rx_invalid, 2);
    assert_eq!(
        d.net.receive(&d.mem, &frame(0, MIN_FRAME_LEN)),
        RxOutcome::Delivered
    );
    assert_eq!(
        d.used(RX_QUEUE),
        vec![(u32::from(h), (NET_HDR_LEN + MIN_FRAME_LEN) as u32)]
    );
}

#[test]
fn every_publication_is_a_new_edge() {
    let mut d = Driver::ready(16);
    for _ in 0..4 {
        d.post_rx(1526);
    }
    d.notify(RX_QUEUE);
    assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
    assert!(d.net.take_irq());
    // Not acknowledged yet: a new frame still makes a new edge.
    assert_eq!(d.net.receive(&d.mem, &frame(2, 60)), RxOutcome::Delivered);
    assert!(d.net.take_irq());
    // Acknowledged, then more work: status rises again with a new edge.
    assert_eq!(d.ack(), 1);
    assert!(!d.net.take_irq());
    assert_eq!(d.net.receive(&d.mem, &frame(3, 60)), RxOutcome::Delivered);
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    assert!(d.net.take_irq());
    // ACK of bits that are not set changes nothing.
    d.w32(VIRTIO_MMIO_INTERRUPT_ACK, 2);
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 1);
}

#[test]
fn no_interrupt_flag_suppresses_interrupts() {
    let mut d = Driver::ready(16);
    let avail = d.q[0].avail;
    d.mem
        .write_obj((VRING_AVAIL_F_NO_INTERRUPT as u16).to_le(), GuestAddress(avail))
        .unwrap();
    d.post_rx(1526);
    d.notify(RX_QUEUE);
    assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
    assert!(!d.net.take_irq());
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    // The buffer is still returned; the driver finds it by polling.
    assert_eq!(d.used(RX_QUEUE).len(), 1);
    // Re-enabled: interrupts come back.
    d.mem.write_obj(0u16, GuestAddress(avail)).unwrap();
    d.post_rx(1526);
    d.notify(RX_QUEUE);
    assert_eq!(d.net.receive(&d.mem, &frame(2, 60)), RxOutcome::Delivered);
    assert!(d.net.take_irq());
}

#[test]
fn backlog_waits_for_buffers_and_keeps_order() {
    let mut d = Driver::ready(16);
    let frames: Vec<Vec<u8>> = (0..5).map(|i| frame(i, 60 + i as usize)).collect();
    for f in &frames {
        assert_eq!(d.net.receive(&d.mem, f), RxOutcome::Queued);
    }
    assert!(!d.net.take_irq());
    assert_eq!(d.net.backlog_len(), 5);
    // Three buffers: the three oldest frames go in, one interrupt.
    let posted: Vec<(u16, u64)> = (0..3).map(|_| d.post_rx(1526)).collect();
    d.notify(RX_QUEUE);
    assert!(d.net.take_irq());
    assert!(!d.net.take_irq());
    let used = d.used(RX_QUEUE);
    assert_eq!(used.len(), 3);
    for (i, ((head, addr), (id, len))) in posted.iter().zip(&used).enumerate() {
        assert_eq!(u32::from(*head), *id);
        assert_eq!(*len as usize, NET_HDR_LEN + frames[i].len());
        assert_eq!(d.read(*addr, *len as usize), expected_rx(&frames[i]));
    }
    assert_eq!(d.net.backlog_len(), 2);
    // A new frame queues behind the backlog even when a buffer is free.
    let (_, addr) = d.post_rx(1526);
    let late = frame(99, 70);
    assert_eq!(d.net.receive(&d.mem, &late), RxOutcome::Queued);
    assert_eq!(d.read(addr, NET_HDR_LEN + 63), expected_rx(&frames[3]));
    d.ack();
    let _ = d.net.take_irq();
    d.post_rx(1526);
    let (_, addr) = d.post_rx(1526);
    d.notify(RX_QUEUE);
    assert_eq!(d.read(addr, NET_HDR_LEN + 70), expected_rx(&late));
    assert_eq!(d.net.backlog_len(), 0);
    assert_eq!(d.used(RX_QUEUE).len(), 3);
}

#[test]
fn backlog_is_bounded() {
    let mut d = Driver::ready(16);
    for i in 0..RX_BACKLOG_MAX {
        assert_eq!(d.net.receive(&d.mem, &frame(i as u32, 60)), RxOutcome::Queued);
    }
    assert_eq!(d.net.receive(&d.mem, &frame(0, 60)), RxOutcome::Dropped);
    assert_eq!(d.net.counters().rx_backlog_full, 1);
    assert_eq!(d.net.backlog_len(), RX_BACKLOG_MAX);
}

#[test]
fn frames_before_driver_ok_wait_for_it() {
    let mut d = Driver::new(16);
    let early = frame(1, 80);
    assert_eq!(d.net.receive(&d.mem, &early), RxOutcome::Queued);
    assert!(d.negotiate(FEATURES));
    d.setup_queue(RX_QUEUE);
    d.setup_queue(TX_QUEUE);
    // Buffers and a transmit before DRIVER_OK: the device must not touch them yet.
    let (_, addr) = d.post_rx(1526);
    d.notify(RX_QUEUE);
    let tx = frame(2, 64);
    d.queue_tx(&tx);
    d.notify(TX_QUEUE);
    assert!(d.used(RX_QUEUE).is_empty());
    assert!(d.net.take_tx().is_empty());
    assert!(!d.net.take_irq());
    d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
    assert_eq!(d.read(addr, NET_HDR_LEN + 80), expected_rx(&early));
    assert_eq!(d.net.take_tx(), vec![tx]);
    assert_eq!(d.used(RX_QUEUE).len(), 1);
    assert_eq!(d.used(TX_QUEUE).len(), 1);
    assert!(d.net.take_irq());
}

#[test]
fn reset_forgets_the_driver() {
    let mut d = Driver::ready(16);
    d.post_rx(1526);
    d.notify(RX_QUEUE);
    assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Delivered);
    d.w32(VIRTIO_MMIO_STATUS, 0);
    assert_eq!(d.status(), 0);
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert!(!d.net.take_irq());
    for q in 0..2 {
        d.w32(VIRTIO_MMIO_QUEUE_SEL, q);
        assert_eq!(d.r32(VIRTIO_MMIO_QUEUE_READY), 0);
    }
    assert!(!d.net.driver_ready());
    // A frame now waits; notifications to dead queues do nothing.
    assert_eq!(d.net.receive(&d.mem, &frame(2, 60)), RxOutcome::Queued);
    d.queue_tx(&frame(3, 60));
    d.notify(TX_QUEUE);
    assert!(d.net.take_tx().is_empty());
    // Re-initialise from scratch (fresh rings): everything works again.
    d.q = [Vq::new(RING_BASE[0], 32), Vq::new(RING_BASE[1], 32)];
    d.init();
    let (_, addr) = d.post_rx(1526);
    d.notify(RX_QUEUE);
    assert_eq!(d.read(addr, NET_HDR_LEN + 60), expected_rx(&frame(2, 60)));
    let f = frame(4, 60);
    d.queue_tx(&f);
    d.notify(TX_QUEUE);
    assert_eq!(d.net.take_tx(), vec![f]);
}

#[test]
fn bad_queue_setup_needs_reset() {
    type Setup = fn(&mut Driver);
    let cases: [(&str, Setup); 7] = [
        ("size not a power of two", |d| d.w32(VIRTIO_MMIO_QUEUE_NUM, 3)),
        ("size above the maximum", |d| d.w32(VIRTIO_MMIO_QUEUE_NUM, 512)),
        ("size zero", |d| d.w32(VIRTIO_MMIO_QUEUE_NUM, 0)),
        ("misaligned descriptors", |d| {
            d.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1008)
        }),
        ("misaligned used ring", |d| {
            d.w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x1002)
        }),
        ("rings outside RAM", |d| {
            d.w32(VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
            d.w32(VIRTIO_MMIO_QUEUE_READY, 1);
        }),
        ("available ring at 0", |d| {
            d.w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0);
            d.w32(VIRTIO_MMIO_QUEUE_READY, 1);
        }),
    ];
    for (name, setup) in cases {
        let mut d = Driver::new(16);
        assert!(d.negotiate(FEATURES));
        d.setup_queue(RX_QUEUE);
        d.w32(VIRTIO_MMIO_QUEUE_SEL, 1);
        d.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x4000);
        d.w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x5000);
        d.w32(VIRTIO_MMIO_QUEUE_USED_LOW, 0x6000);
        setup(&mut d);
        assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0, "{name}");
        assert_eq!(d.r32(VIRTIO_MMIO_QUEUE_READY), 0, "{name}");
        // Before DRIVER_OK, no configuration interrupt.
        assert!(!d.net.take_irq(), "{name}");
        d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
        assert!(!d.net.driver_ready(), "{name}");
        // A reset recovers.
        d.init();
    }
}

#[test]
fn used_ring_header_is_initialised_by_the_device() {
    let mut d = Driver::new(16);
    assert!(d.negotiate(FEATURES));
    d.setup_queue(RX_QUEUE);
    // A driver that leaves garbage in the used ring before enabling the queue.
    let used = d.q[1].used;
    d.mem.write_obj(0xffff_ffffu32, GuestAddress(used)).unwrap();
    d.setup_queue_keeping_memory(TX_QUEUE);
    assert_eq!(d.mem.read_obj::<u32>(GuestAddress(used)).unwrap(), 0);
    d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
    let f = frame(1, 60);
    d.queue_tx(&f);
    d.notify(TX_QUEUE);
    assert_eq!(d.net.take_tx(), vec![f]);
    assert_eq!(d.used(TX_QUEUE).len(), 1);
}

#[test]
fn queue_registers_are_frozen_while_ready() {
    let mut d = Driver::ready(16);
    let before = d.net.state();
    d.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
    d.w32(VIRTIO_MMIO_QUEUE_NUM, 8);
    d.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x8000);
    d.w32(VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
    d.w32(VIRTIO_MMIO_QUEUE_SEL, 5);
    d.w32(VIRTIO_MMIO_QUEUE_NUM, 8);
    d.w32(VIRTIO_MMIO_QUEUE_READY, 1);
    d.w32(VIRTIO_MMIO_QUEUE_NOTIFY, 5);
    let after = d.net.state();
    assert_eq!(after.transport.queues, before.transport.queues);
    assert_eq!(after.transport.status, before.transport.status);
    // Disabling a queue is allowed; the device then leaves it alone.
    d.w32(VIRTIO_MMIO_QUEUE_SEL, 1);
    d.w32(VIRTIO_MMIO_QUEUE_READY, 0);
    d.queue_tx(&frame(1, 60));
    d.notify(TX_QUEUE);
    assert!(d.net.take_tx().is_empty());
}

#[test]
fn corrupt_rings_need_reset_after_driver_ok() {
    // Available index jumping more than the queue size ahead.
    let mut d = Driver::ready(16);
    d.mem
        .write_obj(100u16.to_le(), GuestAddress(d.q[1].avail + 2))
        .unwrap();
    d.notify(TX_QUEUE);
    assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    // The driver is told through a configuration-change interrupt.
    assert_eq!(d.r32(VIRTIO_MMIO_INTERRUPT_STATUS), 2);
    assert!(d.net.take_irq());
    assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Queued);
    d.init();

    // A head index beyond the queue.
    let mut d = Driver::ready(16);
    d.post_rx(1526);
    let entry = d.q[0].avail + 4;
    d.mem.write_obj(40u16.to_le(), GuestAddress(entry)).unwrap();
    d.notify(RX_QUEUE);
    assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Queued);
    assert_ne!(d.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

#[test]
fn descriptor_loops_terminate() {
    let mut d = Driver::ready(16);
    // TX: a descriptor whose next is itself, with a small length.
    let at = d.q[1].desc;
    let head = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: 8,
            writable: false,
        }],
    );
    let desc = at + 16 * u64::from(head);
    d.mem
        .write_obj((VRING_DESC_F_NEXT as u16).to_le(), GuestAddress(desc + 12))
        .unwrap();
    d.mem.write_obj(head.to_le(), GuestAddress(desc + 14)).unwrap();
    d.notify(TX_QUEUE);
    // The chain ends after `size` (16) descriptors: 128 bytes, 12 of
    // them header, each descriptor reading the same 8 bytes.
    let out = d.net.take_tx();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), 16 * 8 - NET_HDR_LEN);
    assert_eq!(d.used(TX_QUEUE).len(), 1);
    // RX: a loop of tiny writable descriptors cannot hold a frame.
    let at = d.q[0].desc;
    let head = d.add_chain(
        RX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: 4,
            writable: true,
        }],
    );
    let desc = at + 16 * u64::from(head);
    d.mem
        .write_obj(
            ((VRING_DESC_F_NEXT | VRING_DESC_F_WRITE) as u16).to_le(),
            GuestAddress(desc + 12),
        )
        .unwrap();
    d.mem.write_obj(head.to_le(), GuestAddress(desc + 14)).unwrap();
    d.notify(RX_QUEUE);
    assert_eq!(d.net.receive(&d.mem, &frame(1, 60)), RxOutcome::Dropped);
    assert_eq!(d.used(RX_QUEUE), vec![(u32::from(head), 0)]);
    // Indirect descriptors were not negotiated; one pointing at garbage is survived.
    let head = d.add_chain(
        TX_QUEUE,
        &[Buf {
            addr: 0x30_0000,
            len: 0xfff0,
            writable: false,
        }],
    );
    let desc = d.q[1].desc + 16 * u64::from(head);
    d.mem
        .write_obj((VRING_DESC_F_INDIRECT as u16).to_le(), GuestAddress(desc + 12))
        .unwrap();
    d.notify(TX_QUEUE);
    let _ = d.net.take_tx();
    assert_eq!(d.used(TX_QUEUE).len(), 1);
}

#[test]
fn indices_wrap_around() {
    // More than 65536 frames each way through 4-entry queues.
    let mut d = Driver::ready(4);
    for i in 0..70_000u32 {
        let f = frame(i, 60 + (i % 64) as usize);
        let (head, addr) = d.post_rx(1526);
        d.notify(RX_QUEUE);
        assert_eq!(d.net.receive(&d.mem, &f), RxOutcome::Delivered);
        assert_eq!(
            d.used(RX_QUEUE),
            vec![(u32::from(head), (NET_HDR_LEN + f.len()) as u32)]
        );
        assert_eq!(d.read(addr, NET_HDR_LEN + f.len()), expected_rx(&f));
        let h = d.queue_tx(&f);
        d.notify(TX_QUEUE);
        assert_eq!(d.net.take_tx(), vec![f]);
        assert_eq!(d.used(TX_QUEUE), vec![(u32::from(h), 0)]);
        d.ack();
        let _ = d.net.take_irq();
    }
    assert_eq!(d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}
