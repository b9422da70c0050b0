//! Origins kept in the cache tables `analysis_origins` (one row per
//! question) and `analysis_origin_links` (one per link), keyed by the
//! question as text.

use rusqlite::{params, OptionalExtension};
use vmrr_index::{Pos, VmId};

use super::{LinkKind, Origin, OriginEnd, OriginLink, OriginQuery, OriginTarget, Place};
use crate::analysis::cache::Cache;
use crate::analysis::AnalysisError;

/// The question as the cache's key: `vm:icount:target:max`.
pub(super) fn key(q: &OriginQuery) -> String {
    let target = match &q.target {
        OriginTarget::Memory { addr, len } => format!("{addr:#x}+{len}"),
        OriginTarget::Register(r) => r.trim().to_ascii_lowercase(),
    };
    format!("{}:{}:{target}:{}", q.vm, q.icount, q.max_links)
}

fn end_parts(end: &OriginEnd) -> (&'static str, String, String) {
    match end {
        OriginEnd::Constant(s) => ("constant", s.clone(), String::new()),
        OriginEnd::Input(s) => ("input", s.clone(), String::new()),
        OriginEnd::Mix { op, sources } => ("mix", op.clone(), sources.join("\n")),
        OriginEnd::Initial(s) => ("initial", s.clone(), String::new()),
        OriginEnd::Unknown(s) => ("unknown", s.clone(), String::new()),
        OriginEnd::TooLong(n) => ("too_long", n.to_string(), String::new()),
    }
}

fn end_of(kind: &str, text: String, sources: String) -> OriginEnd {
    match kind {
        "constant" => OriginEnd::Constant(text),
        "input" => OriginEnd::Input(text),
        "mix" => OriginEnd::Mix {
            op: text,
            sources: sources.lines().map(str::to_string).collect(),
        },
        "initial" => OriginEnd::Initial(text),
        "too_long" => OriginEnd::TooLong(text.parse().unwrap_or(0)),
        _ => OriginEnd::Unknown(text),
    }
}

/// The cached answer to `key`, if there is one.
pub(super) fn load(cache: &Cache, key: &str) -> Result<Option<Origin>, AnalysisError> {
    if cache.is_absent()? {
        return Ok(None);
    }
    let conn = cache.conn();
    let head = conn
        .query_row(
            "SELECT vm, icount, vtime_ns, target, value, end_kind, end_text, end_sources
             FROM analysis_origins WHERE query = ?1",
            [key],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ))
            },
        )
        .optional()
        .map_err(|e| cache.error(e))?;
    let Some((vm, icount, vtime, target, value, kind, text, sources)) = head else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT vm, icount, vtime_ns, vm_name, rip, function, line, kind, frame, peer, what, dest, src,
                    flow, value, trivial, place
             FROM analysis_origin_links WHERE query = ?1 ORDER BY link",
        )
        .map_err(|e| cache.error(e))?;
    let links = stmt
        .query_map([key], |r| {
            let frame = r.get::<_, Option<i64>>(8)?.unwrap_or(0) as u64;
            let peer = r.get::<_, Option<i64>>(9)?.unwrap_or(0) as VmId;
            let kind = match r.get::<_, String>(7)?.as_str() {
                "received" => LinkKind::Received { frame, from_vm: peer },
                "sent" => LinkKind::Sent { frame, to_vm: peer },
                _ => LinkKind::Write,
            };
            Ok(OriginLink {
                pos: Pos::new(
                    r.get::<_, i64>(0)? as VmId,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ),
                vm_name: r.get(3)?,
                rip: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                function: r.get(5)?,
                line: r.get(6)?,
                kind,
                what: r.get(10)?,
                dest: r.get(11)?,
                place: serde_json::from_str(&r.get::<_, String>(16)?)
                    .unwrap_or(Place::Register(String::new())),
                from: r.get(12)?,
                flow: r.get(13)?,
                value: r.get(14)?,
                trivial: r.get::<_, i64>(15)? != 0,
            })
        })
        .map_err(|e| cache.error(e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| cache.error(e))?;
    Ok(Some(Origin {
        start: Pos::new(vm as VmId, icount as u64, vtime as u64),
        target,
        value,
        links,
        end: end_of(&kind, text, sources),
    }))
}

/// Keeps `origin` as the answer to `key` (nothing if the cache is read-only).
pub(super) fn save(cache: &Cache, key: &str, origin: &Origin) -> Result<(), AnalysisError> {
    if !cache.writable() {
        return Ok(());
    }
    let write = || -> rusqlite::Result<()> {
        let conn = cache.conn();
        let tx = conn.unchecked_transaction()?;
        let (kind, text, sources) = end_parts(&origin.end);
        tx.execute("DELETE FROM analysis_origin_links WHERE query = ?1", [key])?;
        tx.execute(
            "INSERT OR REPLACE INTO analysis_origins VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                key,
                i64::from(origin.start.vm),
                origin.start.icount as i64,
                origin.start.vtime_ns as i64,
                origin.target,
                origin.value,
                kind,
                text,
                sources
            ],
        )?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO analysis_origin_links VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?;
            for (i, l) in origin.links.iter().enumerate() {
                let (kind, frame, peer) = match l.kind {
                    LinkKind::Write => ("write", None, None),
                    LinkKind::Received { frame, from_vm } => {
                        ("received", Some(frame as i64), Some(i64::from(from_vm)))
                    }
                    LinkKind::Sent { frame, to_vm } => ("sent", Some(frame as i64), Some(i64::from(to_vm))),
                };
                stmt.execute(params![
                    key,
                    i as i64,
                    i64::from(l.pos.vm),
                    l.pos.icount as i64,
                    l.pos.vtime_ns as i64,
                    l.vm_name,
                    l.rip.map(|r| r as i64),
                    l.function,
                    l.line,
                    kind,
                    frame,
                    peer,
                    l.what,
                    l.dest,
                    l.from,
                    l.flow,
                    l.value,
                    i64::from(l.trivial),
                    serde_json::to_string(&l.place).unwrap_or_default()
                ])?;
            }
        }
        tx.commit()
    };
    write().map_err(|e| cache.error(e))
}
