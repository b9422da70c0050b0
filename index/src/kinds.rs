//! Event kinds this vmrr does not know. Kinds are free text (SCHEMA.md): a
//! newer vmrr may write kinds an older one has never heard of, without a
//! schema change. They are not damage: the typed queries pass over them and
//! [`Index::unknown_kinds`] counts them.

use crate::error::{Result, SqlContext};
use crate::query::get_u64;
use crate::rows::EventKind;
use crate::Index;

/// ` AND kind IN (...every kind this vmrr knows...)`. Kinds are free text
/// (index/SCHEMA.md): a newer vmrr may add some without a schema change.
/// The typed queries pass over rows of kinds they do not know, as they
/// would over a table they do not know, instead of calling the trace
/// damaged; `vmrr sql` still shows them, and [`Index::unknown_kinds`]
/// counts them.
pub(crate) fn known_kinds() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let list: Vec<String> = EventKind::ALL
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        format!(" AND kind IN ({})", list.join(", "))
    })
}

impl Index {
    /// The kinds of event this vmrr does not know (written by a newer one)
    /// and how many rows each has; the typed queries pass over them.
    pub fn unknown_kinds(&self) -> Result<Vec<(String, u64)>> {
        let sql = format!(
            "SELECT kind, count(*) FROM events WHERE NOT (1{}) GROUP BY kind ORDER BY kind",
            known_kinds()
        );
        let p = &self.path;
        let what = "counting events of unknown kinds";
        let mut stmt = self.conn.prepare(&sql).ctx(p, what)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, get_u64(r, 1)?)))
            .ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }
}
