//! The fault schedule applied to frames: partitions, heals, drops and delays,
//! all decided from virtual send times and the seed, never from the host.

use super::config::{FaultKind, FaultSpec};

/// What happens to one frame on its way from one VM to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered after this much extra latency (ns).
    Pass {
        /// Added to the link latency.
        extra_ns: u64,
    },
    /// Lost: the sender and receiver are on different sides of a partition.
    Partitioned,
    /// Lost: a drop fault chose this frame.
    Dropped,
}

/// The faults and the partitions in force.
#[derive(Debug, Clone)]
pub struct Faults {
    schedule: Vec<FaultSpec>,
    seed: u64,
    /// Schedule entries already applied (partition/heal are stateful).
    applied: usize,
    /// Groups currently cut off from the rest.
    partitions: Vec<Vec<usize>>,
}

/// SplitMix64 finaliser: a well-mixed hash of one word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn same_link(between: (usize, usize), a: usize, b: usize) -> bool {
    between == (a, b) || between == (b, a)
}

impl Faults {
    /// The schedule (sorted by time, as the config guarantees).
    pub fn new(schedule: Vec<FaultSpec>, seed: u64) -> Self {
        Faults {
            schedule,
            seed,
            applied: 0,
            partitions: Vec::new(),
        }
    }

    /// The verdict for frame `frame_id` sent at `sent_ns` from `src` to `dst`.
    /// Calls must come in non-decreasing `sent_ns` order.
    pub fn judge(&mut self, frame_id: u64, sent_ns: u64, src: usize, dst: usize) -> Verdict {
        while let Some(f) = self.schedule.get(self.applied) {
            if f.at_ns > sent_ns {
                break;
            }
            match &f.kind {
                FaultKind::Partition(group) => self.partitions.push(group.clone()),
                FaultKind::Heal => self.partitions.clear(),
                FaultKind::Drop { .. } | FaultKind::Delay { .. } => {}
            }
            self.applied += 1;
        }
        if self
            .partitions
            .iter()
            .any(|g| g.contains(&src) != g.contains(&dst))
        {
            return Verdict::Partitioned;
        }
        let mut extra_ns: u64 = 0;
        for f in &self.schedule[..self.applied] {
            match f.kind {
                FaultKind::Drop {
                    between,
                    fraction,
                    until_ns,
                } if sent_ns < until_ns && same_link(between, src, dst) => {
                    let roll = mix(self.seed ^ mix(frame_id ^ mix(dst as u64))) as f64 / u64::MAX as f64;
                    if roll < fraction {
                        return Verdict::Dropped;
                    }
                }
                FaultKind::Delay {
                    between,
                    extra_ns: e,
                    until_ns,
                } if sent_ns < until_ns && same_link(between, src, dst) => {
                    extra_ns = extra_ns.saturating_add(e);
                }
                _ => {}
            }
        }
        Verdict::Pass { extra_ns }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_then_heal() {
        let schedule = vec![
            FaultSpec {
                at_ns: 100,
                kind: FaultKind::Partition(vec![2]),
            },
            FaultSpec {
                at_ns: 200,
                kind: FaultKind::Heal,
            },
        ];
        let mut f = Faults::new(schedule, 1);
        assert_eq!(f.judge(1, 50, 0, 2), Verdict::Pass { extra_ns: 0 });
        assert_eq!(f.judge(2, 100, 0, 2), Verdict::Partitioned);
        assert_eq!(f.judge(3, 150, 2, 1), Verdict::Partitioned);
        assert_eq!(f.judge(4, 150, 0, 1), Verdict::Pass { extra_ns: 0 });
        assert_eq!(f.judge(5, 200, 0, 2), Verdict::Pass { extra_ns: 0 });
    }

    #[test]
    fn drop_fraction_is_seeded_and_bounded() {
        let schedule = vec![
            FaultSpec {
                at_ns: 0,
                kind: FaultKind::Drop {
                    between: (0, 1),
                    fraction: 0.5,
                    until_ns: 1000,
                },
            },
            FaultSpec {
                at_ns: 0,
                kind: FaultKind::Delay {
                    between: (1, 2),
                    extra_ns: 7,
                    until_ns: u64::MAX,
                },
            },
        ];
        let run = |seed| {
            let mut f = Faults::new(schedule.clone(), seed);
            (0..400).map(|i| f.judge(i, 10, 0, 1)).collect::<Vec<_>>()
        };
        let a = run(9);
        assert_eq!(a, run(9), "same seed, same drops");
        assert_ne!(a, run(10));
        let dropped = a.iter().filter(|v| **v == Verdict::Dropped).count();
        assert!((150..250).contains(&dropped), "{dropped} of 400 dropped at 0.5");
        let mut f = Faults::new(schedule, 9);
        assert_eq!(
            f.judge(1, 2000, 0, 1),
            Verdict::Pass { extra_ns: 0 },
            "drop fault over"
        );
        assert_eq!(f.judge(2, 2000, 2, 1), Verdict::Pass { extra_ns: 7 });
    }
}
