//! Snapshots and fuzzing: a restored device behaves exactly like the
//! original, and no register traffic, ring corruption or hand-edited
//! snapshot makes it panic.

use super::test_driver::*;
use super::*;
use virtio_bindings::virtio_config::{VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_NEEDS_RESET};
use virtio_bindings::virtio_mmio::*;
use vm_memory::GuestAddress;

use crate::rng::SeededRng;

fn clone_ram(mem: &GuestRam) -> GuestRam {
    let mut bytes = vec![0u8; MEM_SIZE];
    mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
    let copy = ram();
    copy.write_slice(&bytes, GuestAddress(0)).unwrap();
    copy
}

fn ram_bytes(mem: &GuestRam) -> Vec<u8> {
    let mut bytes = vec![0u8; MEM_SIZE];
    mem.read_slice(&mut bytes, GuestAddress(0)).unwrap();
    bytes
}

/// A mixed workload of well-formed traffic; returns what was observed.
fn workload(d: &mut Driver, rng: &mut SeededRng, steps: usize) -> Vec<String> {
    let mut log = Vec::new();
    for i in 0..steps {
        match rng.below(6) {
            0 => {
                d.post_rx(1526);
                d.notify(RX_QUEUE);
            }
            1 | 2 => {
                let f = frame(i as u32, 14 + rng.below(1501) as usize);
                log.push(format!("rx {:?}", d.net.receive(&d.mem, &f)));
            }
            3 => {
                let f = frame(i as u32 + 7, 14 + rng.below(1501) as usize);
                d.queue_tx(&f);
                d.notify(TX_QUEUE);
            }
            4 => log.push(format!("used {:?} {:?}", d.used(RX_QUEUE), d.used(TX_QUEUE))),
            _ => log.push(format!("ack {}", d.ack())),
        }
        log.push(format!("irq {} tx {:?}", d.net.take_irq(), d.net.take_tx()));
    }
    log
}

#[test]
fn state_round_trip_behaves_identically() {
    let mut a = Driver::ready(8);
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    workload(&mut a, &mut rng, 300);
    // Leave something in every part of the state.
    for i in 0..3 {
        a.net.receive(&a.mem, &frame(1000 + i, 100));
    }
    a.queue_tx(&frame(2000, 80));
    a.notify(TX_QUEUE);
    a.w32(VIRTIO_MMIO_QUEUE_SEL, 1);
    let state = a.net.state();
    assert!(!state.backlog.is_empty());
    assert!(!state.tx_pending.is_empty());

    // Through JSON too, as a checkpoint on disk would go.
    let json = serde_json::to_string(&state).unwrap();
    let decoded: VirtioNetState = serde_json::from_str(&json).unwrap();
    assert_eq!(decoded, state);

    let mut b = Driver {
        mem: clone_ram(&a.mem),
        net: VirtioNet::from_state(&decoded),
        q: a.q.clone(),
    };
    assert_eq!(b.net.state(), state);
    // The same generator state, so both sides see the same traffic.
    let mut rng_b = rng;
    let log_a = workload(&mut a, &mut rng, 2000);
    let log_b = workload(&mut b, &mut rng_b, 2000);
    assert_eq!(log_a, log_b);
    assert_eq!(a.net.state(), b.net.state());
    assert!(ram_bytes(&a.mem) == ram_bytes(&b.mem));
    assert!(a.net.counters().rx_delivered > 100);
}

#[test]
fn restored_backlog_is_sanitised() {
    let mut d = Driver::ready(16);
    for _ in 0..8 {
        d.post_rx(1526);
    }
    let mut s = d.net.state();
    s.backlog = vec![
        vec![],
        frame(1, 60),
        vec![0; 5000],
        frame(2, MAX_FRAME_LEN),
        vec![1; 3],
    ];
    d.net = VirtioNet::from_state(&s);
    assert_eq!(d.net.backlog_len(), 2);
    d.notify(RX_QUEUE);
    let lens: Vec<u32> = d.used(RX_QUEUE).iter().map(|&(_, len)| len).collect();
    assert_eq!(lens, [72, 1526]);
}

/// Registers a fuzzer pokes, plus some random offsets.
const REGS: [u32; 24] = [
    VIRTIO_MMIO_DEVICE_FEATURES_SEL,
    VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL,
    VIRTIO_MMIO_QUEUE_SEL,
    VIRTIO_MMIO_QUEUE_NUM,
    VIRTIO_MMIO_QUEUE_READY,
    VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_INTERRUPT_ACK,
    VIRTIO_MMIO_STATUS,
    VIRTIO_MMIO_STATUS,
    VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_DESC_HIGH,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW,
    VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
    VIRTIO_MMIO_QUEUE_USED_LOW,
    VIRTIO_MMIO_QUEUE_USED_HIGH,
    VIRTIO_MMIO_CONFIG,
    VIRTIO_MMIO_CONFIG + 4,
    VIRTIO_MMIO_GUEST_PAGE_SIZE,
    VIRTIO_MMIO_QUEUE_PFN,
    VIRTIO_MMIO_SHM_SEL,
    VIRTIO_MMIO_CONFIG_GENERATION,
];

/// Random register traffic, ring and descriptor corruption, traffic and
/// snapshots, from a fixed seed. Returns a digest of everything seen.
fn fuzz(seed: u64, steps: usize) -> (VirtioNetState, Vec<u8>, Vec<String>) {
    let mut rng = SeededRng::new(seed);
    let mut d = Driver::ready(if seed & 1 == 0 { 16 } else { 256 });
    let mut log = Vec::new();
    for i in 0..steps {
        match rng.below(16) {
            0 | 1 => {
                let reg = REGS[rng.below(REGS.len() as u64) as usize];
                // Small values hit the interesting cases more often.
                let value = match rng.below(4) {
                    0 => rng.next_u64() as u32,
                    1 => 1 << rng.below(32),
                    _ => rng.below(8) as u32,
                };
                d.w32(reg, value);
            }
            2 => {
                let off = rng.below(0x1010);
                let len = [1usize, 2, 3, 4, 8][rng.below(5) as usize];
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                d.net.mmio_write(&d.mem, off, &bytes);
                let mut back = vec![0u8; len];
                d.net.mmio_read(off, &mut back);
                log.push(format!("read {off:#x} {back:?}"));
            }
            3 => {
                // Scribble over a ring: descriptor table, available or used ring.
                let q = rng.below(2) as usize;
                let vq = &d.q[q];
                let span = vq.used + 6 + 8 * u64::from(vq.size) - vq.desc;
                let at = vq.desc + rng.below(span);
                let v = rng.next_u64();
                let _ = match rng.below(3) {
                    0 => d.mem.write_obj(v as u8, GuestAddress(at)),
                    1 => d.mem.write_obj(v as u16, GuestAddress(at)),
                    _ => d.mem.write_obj(v, GuestAddress(at)),
                };
            }
            4 => {
                // A chain of random descriptors.
                let q = rng.below(2) as u16;
                let n = 1 + rng.below(4) as usize;
                let bufs: Vec<Buf> = (0..n)
                    .map(|_| Buf {
                        addr: match rng.below(3) {
                            0 => rng.next_u64(),
                            1 => rng.below(MEM_SIZE as u64 + 0x1000),
                            _ => u64::MAX - rng.below(4096),
                        },
                        len: match rng.below(3) {
                            0 => rng.next_u64() as u32,
                            _ => rng.below(2048) as u32,
                        },
                        writable: rng.below(2) == 0,
                    })
                    .collect();
                let head = d.add_chain(q, &bufs);
                // Sometimes corrupt flags/next of the head.
                if rng.below(2) == 0 {
                    let at = d.q[usize::from(q)].desc + 16 * u64::from(head) + 12;
                    let _ = d.mem.write_obj(rng.next_u64() as u32, GuestAddress(at));
                }
                d.notify(q);
            }
            5 | 6 => {
                d.post_rx(rng.below(2000) as u32);
                d.notify(RX_QUEUE);
            }
            7 | 8 => {
                let f = frame(i as u32, rng.below(1600) as usize);
                log.push(format!("rx {:?}", d.net.receive(&d.mem, &f)));
            }
            9 | 10 => {
                let f = frame(i as u32, rng.below(1600) as usize);
                d.queue_tx(&f);
                d.notify(TX_QUEUE);
            }
            11 => {
                // A driver that restarts, sometimes with odd queue sizes.
                let size = [4u16, 16, 256][rng.below(3) as usize];
                d.q = [Vq::new(RING_BASE[0], size), Vq::new(RING_BASE[1], size)];
                if d.negotiate(FEATURES) {
                    d.setup_queue(RX_QUEUE);
                    d.setup_queue(TX_QUEUE);
                    d.add_status(VIRTIO_CONFIG_S_DRIVER_OK);
                }
            }
            12 => {
                let state = d.net.state();
                d.net = VirtioNet::from_state(&state);
                assert_eq!(d.net.state(), state);
            }
            13 => log.push(format!("ack {}", d.ack())),
            _ => log.push(format!("used {:?} {:?}", d.used(RX_QUEUE), d.used(TX_QUEUE))),
        }
        let irq = d.net.take_irq();
        let tx = d.net.take_tx();
        log.push(format!("irq {irq} tx {}", tx.len()));
        // Markers so the test can check the fuzz reached both kinds of state.
        if d.net.status() & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            log.push("needs reset".into());
        } else if d.net.driver_ready() {
            log.push("live".into());
        }
    }
    (d.net.state(), ram_bytes(&d.mem), log)
}

#[test]
fn fuzz_never_panics_and_is_deterministic() {
    for seed in [1u64, 2, 0xdead_beef, 0x1234_5678_9abc_def1] {
        let first = fuzz(seed, 20_000);
        let second = fuzz(seed, 20_000);
        assert!(first == second, "seed {seed:#x} is not deterministic");
        // The fuzz must exercise both the working device and its error state.
        let count = |m: &str| first.2.iter().filter(|l| *l == m).count();
        assert!(count("needs reset") > 0, "seed {seed:#x}");
        assert!(count("live") > 10_000, "seed {seed:#x}");
        let c = &first.0.counters;
        assert!(c.tx_frames > 0 && c.tx_malformed > 0 && c.rx_delivered > 0 && c.rx_bad_buffer > 0);
    }
}

#[test]
fn fuzz_from_random_state_never_panics() {
    // Snapshots a guest can never produce (e.g. a hand-edited checkpoint).
    let mut rng = SeededRng::new(42);
    let mem = ram();
    for _ in 0..2000 {
        let mut s = Driver::ready(16).net.state();
        for q in &mut s.transport.queues {
            q.max_size = rng.next_u64() as u16;
            q.size = rng.next_u64() as u16;
            q.desc_table = rng.next_u64();
            q.avail_ring = rng.next_u64() & !1;
            q.used_ring = rng.next_u64();
            q.next_avail = rng.next_u64() as u16;
            q.next_used = rng.next_u64() as u16;
        }
        s.transport.queue_sel = rng.next_u64() as u32;
        s.backlog = (0..rng.below(300))
            .map(|i| frame(i as u32, rng.below(3000) as usize))
            .collect();
        s.tx_pending = vec![vec![0; rng.below(3000) as usize]];
        let mut net = VirtioNet::from_state(&s);
        assert!(net.backlog_len() <= RX_BACKLOG_MAX);
        net.mmio_write(&mem, 0x50, &0u32.to_le_bytes());
        net.mmio_write(&mem, 0x50, &1u32.to_le_bytes());
        let _ = net.receive(&mem, &frame(1, 60));
        let mut b = [0u8; 4];
        net.mmio_read(0x34, &mut b);
    }
}
