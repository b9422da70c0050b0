//! The PIC pair through its ports: initialisation sequences, masking,
//! priorities, EOI modes, snapshots, and a fuzzer.

use super::*;
use crate::rng::SeededRng;

/// The sequence Linux and most kernels use: edge, cascade, ICW4 present,
/// master vectors 0x20.., slave 0x28.., 8086 mode, all lines unmasked.
fn linux_style() -> Pic {
    let mut pic = Pic::new();
    for (port, value) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x01),
        (0xa0, 0x11),
        (0xa1, 0x28),
        (0xa1, 0x02),
        (0xa1, 0x01),
        (0x21, 0x00),
        (0xa1, 0x00),
    ] {
        pic.port_write(port, value);
    }
    pic
}

fn read_isr(pic: &mut Pic, command_port: u16) -> u8 {
    pic.port_write(command_port, 0x0b);
    pic.port_read(command_port)
}

fn read_irr(pic: &mut Pic, command_port: u16) -> u8 {
    pic.port_write(command_port, 0x0a);
    pic.port_read(command_port)
}

const EOI: u8 = 0x20;

#[test]
fn power_on_delivers_nothing() {
    let mut pic = Pic::new();
    assert_eq!(pic.port_read(0x21), 0xff);
    assert_eq!(pic.port_read(0xa1), 0xff);
    pic.raise_irq(0);
    pic.port_write(0x21, 0x00);
    assert!(!pic.has_pending());
    assert_eq!(pic.acknowledge(), None);
}

#[test]
fn init_sequence_and_vectors() {
    let mut pic = linux_style();
    assert!(!pic.has_pending());
    pic.raise_irq(0);
    assert!(pic.has_pending());
    assert_eq!(pic.acknowledge(), Some(0x20));
    assert!(!pic.has_pending());
    pic.port_write(0x20, EOI);
    pic.raise_irq(7);
    assert_eq!(pic.acknowledge(), Some(0x27));
    pic.port_write(0x20, EOI);
    pic.raise_irq(8);
    assert_eq!(pic.acknowledge(), Some(0x28));
    pic.port_write(0xa0, EOI);
    pic.port_write(0x20, EOI);
    pic.raise_irq(15);
    assert_eq!(pic.acknowledge(), Some(0x2f));
}

#[test]
fn vector_base_ignores_low_icw2_bits() {
    let mut pic = Pic::new();
    for (port, value) in [(0x20, 0x11), (0x21, 0x37), (0x21, 0x04), (0x21, 0x01)] {
        pic.port_write(port, value);
    }
    pic.port_write(0x21, 0x00);
    pic.raise_irq(3);
    assert_eq!(pic.acknowledge(), Some(0x33));
}

#[test]
fn no_delivery_during_init_sequence() {
    let mut pic = linux_style();
    pic.raise_irq(1);
    pic.port_write(0x20, 0x11);
    pic.port_write(0x21, 0x40);
    // ICW1 reset the edge latches and the sequence is not finished.
    pic.raise_irq(1);
    assert!(!pic.has_pending());
    pic.port_write(0x21, 0x04);
    assert!(!pic.has_pending());
    pic.port_write(0x21, 0x01);
    // ICW1 cleared the IMR, so the line is live immediately.
    assert_eq!(pic.port_read(0x21), 0x00);
    assert!(pic.has_pending());
    assert_eq!(pic.acknowledge(), Some(0x41));
}

#[test]
fn init_without_icw4_and_single_mode() {
    let mut pic = Pic::new();
    // ICW1: single, no ICW4: only ICW2 follows.
    pic.port_write(0x20, 0x12);
    pic.port_write(0x21, 0x50);
    assert_eq!(pic.state().master.init_step, InitStep::Ready);
    pic.port_write(0x21, 0x00);
    // In single mode line 2 is an ordinary line.
    pic.raise_irq(2);
    assert_eq!(pic.acknowledge(), Some(0x52));
    // And the slave is not connected.
    pic.raise_irq(9);
    pic.port_write(0x20, EOI);
    assert!(!pic.has_pending());
}

#[test]
fn ltim_is_stored() {
    const ICW1_LTIM: u8 = 0x08;
    let mut pic = Pic::new();
    pic.port_write(0x20, 0x19);
    assert_eq!(pic.state().master.icw1 & ICW1_LTIM, ICW1_LTIM);
}

#[test]
fn masking_latches_and_releases() {
    let mut pic = linux_style();
    pic.port_write(0x21, 0x01);
    assert_eq!(pic.port_read(0x21), 0x01);
    pic.raise_irq(0);
    assert!(!pic.has_pending());
    assert_eq!(read_irr(&mut pic, 0x20), 0x01);
    pic.port_write(0x21, 0x00);
    assert_eq!(pic.acknowledge(), Some(0x20));
    // Masking the cascade line on the master hides the whole slave.
    pic.port_write(0x20, EOI);
    pic.port_write(0x21, 0x04);
    pic.raise_irq(10);
    assert!(!pic.has_pending());
    pic.port_write(0x21, 0x00);
    assert_eq!(pic.acknowledge(), Some(0x2a));
    // Slave IMR works on its own.
    pic.port_write(0xa0, EOI);
    pic.port_write(0x20, EOI);
    pic.port_write(0xa1, 0x08);
    pic.raise_irq(11);
    assert!(!pic.has_pending());
    pic.port_write(0xa1, 0x00);
    assert_eq!(pic.acknowledge(), Some(0x2b));
}

#[test]
fn fixed_priority_and_eoi() {
    let mut pic = linux_style();
    pic.raise_irq(5);
    pic.raise_irq(3);
    assert_eq!(pic.acknowledge(), Some(0x23));
    // 5 is lower than 3 which is in service.
    assert!(!pic.has_pending());
    // Same line again is blocked too.
    pic.raise_irq(3);
    assert!(!pic.has_pending());
    // A higher line preempts.
    pic.raise_irq(1);
    assert_eq!(pic.acknowledge(), Some(0x21));
    assert_eq!(read_isr(&mut pic, 0x20), 0b0000_1010);
    // Non-specific EOI retires the highest in service (1).
    pic.port_write(0x20, EOI);
    assert_eq!(read_isr(&mut pic, 0x20), 0b0000_1000);
    assert!(!pic.has_pending());
    pic.port_write(0x20, EOI);
    assert_eq!(read_isr(&mut pic, 0x20), 0);
    assert_eq!(pic.acknowledge(), Some(0x23));
    pic.port_write(0x20, EOI);
    assert_eq!(pic.acknowledge(), Some(0x25));
    pic.port_write(0x20, EOI);
    assert_eq!(pic.acknowledge(), None);
}

#[test]
fn specific_eoi() {
    let mut pic = linux_style();
    pic.raise_irq(4);
    assert_eq!(pic.acknowledge(), Some(0x24));
    pic.raise_irq(2 + 8);
    pic.raise_irq(1);
    assert_eq!(pic.acknowledge(), Some(0x21));
    // Retire 4 (not the highest) specifically.
    pic.port_write(0x20, 0x60 | 4);
    assert_eq!(read_isr(&mut pic, 0x20), 0b0000_0010);
    pic.port_write(0x20, 0x60 | 1);
    assert_eq!(read_isr(&mut pic, 0x20), 0);
    assert_eq!(pic.acknowledge(), Some(0x2a));
}

#[test]
fn cascade_priority_and_isr() {
    let mut pic = linux_style();
    pic.raise_irq(12);
    assert_eq!(read_irr(&mut pic, 0xa0), 0x10);
    assert_eq!(pic.acknowledge(), Some(0x2c));
    assert_eq!(read_isr(&mut pic, 0xa0), 0x10);
    assert_eq!(read_isr(&mut pic, 0x20), 0x04);
    assert_eq!(read_irr(&mut pic, 0xa0), 0);
    // IRQ 0/1 outrank the cascade line; IRQ 3 does not.
    pic.raise_irq(3);
    assert!(!pic.has_pending());
    pic.raise_irq(0);
    assert_eq!(pic.acknowledge(), Some(0x20));
    pic.port_write(0x20, EOI);
    // Without SFNM even a higher slave line waits for the master EOI.
    pic.raise_irq(8);
    assert!(!pic.has_pending());
    pic.port_write(0xa0, EOI);
    assert!(!pic.has_pending());
    pic.port_write(0x20, EOI);
    assert_eq!(pic.acknowledge(), Some(0x28));
    pic.port_write(0xa0, EOI);
    pic.port_write(0x20, EOI);
    assert_eq!(pic.acknowledge(), Some(0x23));
}

#[test]
fn special_fully_nested_mode() {
    let mut pic = Pic::new();
    for (port, value) in [
        (0x20, 0x11),
        (0x21, 0x20),
        (0x21, 0x04),
        (0x21, 0x11),
        (0xa0, 0x11),
        (0xa1, 0x28),
        (0xa1, 0x02),
        (0xa1, 0x01),
        (0x21, 0x00),
        (0xa1, 0x00),
    ] {
        pic.port_write(port, value);
    }
    pic.raise_irq(12);
    assert_eq!(pic.acknowledge(), Some(0x2c));
    // Lower slave line is still blocked by the slave's own ISR.
    pic.raise_irq(13);
    assert!(!pic.has_pending());
    // A higher slave line gets through the in-service cascade line.
    pic.raise_irq(9);
    assert_eq!(pic.acknowledge(), Some(0x29));
    assert_eq!(read_isr(&mut pic, 0xa0), 0x12);
}

#[test]
fn irq2_goes_to_slave_line_1_when_cascaded() {
    let mut pic = linux_style();
    pic.raise_irq(2);
    assert_eq!(read_irr(&mut pic, 0x20), 0);
    assert_eq!(read_irr(&mut pic, 0xa0), 0x02);
    assert_eq!(pic.acknowledge(), Some(0x29));
}

#[test]
fn automatic_eoi() {
    let mut pic = Pic::new();
    for (port, value) in [
        (0x20, 0x11),
        (0x21, 0x30),
        (0x21, 0x04),
        (0x21, 0x03),
        (0xa0, 0x11),
        (0xa1, 0x38),
        (0xa1, 0x02),
        (0xa1, 0x03),
        (0x21, 0x00),
        (0xa1, 0x00),
    ] {
        pic.port_write(port, value);
    }
    pic.raise_irq(4);
    assert_eq!(pic.acknowledge(), Some(0x34));
    assert_eq!(read_isr(&mut pic, 0x20), 0);
    pic.raise_irq(4);
    assert_eq!(pic.acknowledge(), Some(0x34));
    pic.raise_irq(14);
    assert_eq!(pic.acknowledge(), Some(0x3e));
    assert_eq!(read_isr(&mut pic, 0x20), 0);
    assert_eq!(read_isr(&mut pic, 0xa0), 0);
    pic.raise_irq(14);
    assert_eq!(pic.acknowledge(), Some(0x3e));
}

#[test]
fn rotation_commands() {
    let mut pic = linux_style();
    // Set priority: line 3 lowest, so 4 is now highest.
    pic.port_write(0x20, 0xc0 | 3);
    pic.raise_irq(3);
    pic.raise_irq(0);
    pic.raise_irq(4);
    assert_eq!(pic.acknowledge(), Some(0x24));
    // Rotate on non-specific EOI: 4 becomes lowest, 5 highest, then 0.
    pic.port_write(0x20, 0xa0);
    assert_eq!(pic.state().master.lowest_priority, 4);
    assert_eq!(pic.acknowledge(), Some(0x20));
    // Rotate on specific EOI.
    pic.port_write(0x20, 0xe0);
    assert_eq!(pic.state().master.lowest_priority, 0);
    assert_eq!(pic.acknowledge(), Some(0x23));
    // Rotate-in-AEOI set/clear just toggle a flag here.
    pic.port_write(0x20, 0x80);
    assert!(pic.state().master.rotate_in_aeoi);
    pic.port_write(0x20, 0x00);
    assert!(!pic.state().master.rotate_in_aeoi);
    // No-op command.
    let before = pic.state();
    pic.port_write(0x20, 0x40);
    assert_eq!(pic.state(), before);
}

#[test]
fn special_mask_mode() {
    let mut pic = linux_style();
    pic.raise_irq(3);
    assert_eq!(pic.acknowledge(), Some(0x23));
    pic.raise_irq(5);
    assert!(!pic.has_pending());
    // Handler masks its own level and enters special mask mode.
    pic.port_write(0x21, 0x08);
    pic.port_write(0x20, 0x68);
    assert!(pic.has_pending());
    assert_eq!(pic.acknowledge(), Some(0x25));
    // Leave special mask mode: 3 in service blocks again.
    pic.port_write(0x20, 0x48);
    pic.raise_irq(6);
    assert!(!pic.has_pending());
}

#[test]
fn poll_command() {
    let mut pic = linux_style();
    pic.port_write(0x20, 0x0c);
    assert_eq!(pic.port_read(0x20), 0x00);
    pic.raise_irq(6);
    pic.port_write(0x20, 0x0c);
    assert_eq!(pic.port_read(0x20), 0x86);
    assert_eq!(read_isr(&mut pic, 0x20), 0x40);
    // The poll only covers one read.
    assert_eq!(pic.port_read(0x20), 0x40);
    pic.raise_irq(13);
    pic.port_write(0xa0, 0x0c);
    assert_eq!(pic.port_read(0xa0), 0x85);
    assert_eq!(read_isr(&mut pic, 0xa0), 0x20);
}

#[test]
fn other_ports_and_irqs_are_ignored() {
    let mut pic = linux_style();
    let before = pic.state();
    pic.port_write(0x22, 0x11);
    pic.raise_irq(16);
    pic.raise_irq(255);
    assert_eq!(pic.port_read(0x60), 0xff);
    assert_eq!(pic.state(), before);
}

#[test]
fn state_round_trip() {
    let mut a = linux_style();
    a.raise_irq(12);
    a.raise_irq(3);
    // The cascaded request outranks IRQ 3.
    assert_eq!(a.acknowledge(), Some(0x2c));
    a.port_write(0x20, 0x0b);
    let mut b = Pic::from_state(&a.state());
    assert_eq!(a, b);
    for pic in [&mut a, &mut b] {
        pic.port_write(0x20, EOI);
        pic.raise_irq(1);
    }
    for _ in 0..4 {
        assert_eq!(a.acknowledge(), b.acknowledge());
        assert_eq!(a.port_read(0x20), b.port_read(0x20));
        a.port_write(0x20, EOI);
        b.port_write(0x20, EOI);
    }
    assert_eq!(a.state(), b.state());
}

/// Random traffic must never panic, INT must always agree with INTA, and
/// vectors must always come from a programmed base.
#[test]
fn fuzz_never_panics() {
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    let ports = [0x20u16, 0x21, 0xa0, 0xa1, 0x22, 0xa2];
    for round in 0..64 {
        let mut pic = if round % 2 == 0 { Pic::new() } else { linux_style() };
        for _ in 0..2_000 {
            let r = rng.next_u64();
            let port = ports[(r % ports.len() as u64) as usize];
            let value = (r >> 8) as u8;
            match (r >> 16) % 6 {
                0 | 1 => pic.port_write(port, value),
                2 => {
                    pic.port_read(port);
                }
                3 => pic.raise_irq(value % 20),
                4 => {
                    let pending = pic.has_pending();
                    let vector = pic.acknowledge();
                    assert_eq!(pending, vector.is_some());
                    if let Some(v) = vector {
                        let s = pic.state();
                        assert!(v & 0xf8 == s.master.icw2 & 0xf8 || v & 0xf8 == s.slave.icw2 & 0xf8);
                    }
                }
                _ => {
                    let snapshot = pic.state();
                    assert_eq!(Pic::from_state(&snapshot), pic);
                }
            }
        }
    }
}
