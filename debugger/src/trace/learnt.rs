//! The switch's MAC table as a trace keeps it: every change of the table,
//! with the frame that made it, in `meta` (`switch.learnt`). A fork rebuilds
//! the table at its cut from it.

use crate::cluster::scheduler::Learnt;

/// The `meta` key of the switch's learnt MAC table.
pub const LEARNT_KEY: &str = "switch.learnt";

/// The switch's table changes as `meta` stores them: a JSON list of
/// `[frame id, "52:54:00:12:34:01", port]`.
pub fn learnt_to_json(learnt: &[Learnt]) -> String {
    let rows: Vec<serde_json::Value> = learnt
        .iter()
        .map(|(id, mac, port)| {
            let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            serde_json::json!([id, mac.join(":"), port])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// Reads `meta`'s `switch.learnt`; `None` if it is not that shape.
pub fn learnt_from_json(text: &str) -> Option<Vec<Learnt>> {
    let rows: Vec<(u64, String, usize)> = serde_json::from_str(text).ok()?;
    rows.into_iter()
        .map(|(id, mac, port)| {
            let bytes: Vec<u8> = mac
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).ok())
                .collect::<Option<_>>()?;
            let mac: [u8; 6] = bytes.try_into().ok()?;
            Some((id, mac, port))
        })
        .collect()
}
