//! `vmrr sql`: arbitrary SQL that may only read.
//!
//! Three locks, any of which is enough to keep the trace safe: the statement
//! runs on a separate connection opened with `SQLITE_OPEN_READ_ONLY` (and
//! `PRAGMA query_only`, defensive mode); `Statement::readonly()` must be true;
//! and statements that change the connection rather than the file (ATTACH,
//! transactions, pragma assignments, ...) are refused by their first word.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode};

use crate::error::{IndexError, Result, SqlContext};
use crate::rows::{SqlRows, SqlValue};
use crate::Index;

/// First words of statements refused although SQLite calls them read-only.
const REFUSED_KEYWORDS: [(&str, &str); 11] = [
    ("ATTACH", "would open another database"),
    ("DETACH", "changes the attached databases"),
    ("BEGIN", "starts a transaction"),
    ("COMMIT", "ends a transaction"),
    ("END", "ends a transaction"),
    ("ROLLBACK", "ends a transaction"),
    ("SAVEPOINT", "starts a transaction"),
    ("RELEASE", "ends a transaction"),
    ("VACUUM", "would rewrite a database"),
    ("REINDEX", "would rebuild indexes"),
    ("ANALYZE", "would write statistics"),
];

/// Pragmas that may take an argument in parentheses and only read.
const READING_PRAGMAS: [&str; 11] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "function_list",
];

/// `sql` without leading white space and comments.
fn skip_blank(mut sql: &str) -> &str {
    loop {
        let trimmed = sql.trim_start();
        if let Some(rest) = trimmed.strip_prefix("--") {
            sql = rest.find('\n').map_or("", |i| &rest[i + 1..]);
        } else if let Some(rest) = trimmed.strip_prefix("/*") {
            sql = rest.find("*/").map_or("", |i| &rest[i + 2..]);
        } else {
            return trimmed;
        }
    }
}

/// The leading word of `sql` and what follows it.
fn first_word(sql: &str) -> (&str, &str) {
    let sql = skip_blank(sql);
    let end = sql
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(sql.len());
    (&sql[..end], &sql[end..])
}

/// Why `sql` must not run even on a read-only connection, if it must not.
pub(crate) fn refusal(sql: &str) -> Option<&'static str> {
    let (word, rest) = first_word(sql);
    let upper = word.to_ascii_uppercase();
    if let Some((_, why)) = REFUSED_KEYWORDS.iter().find(|(k, _)| *k == upper) {
        return Some(why);
    }
    if upper == "PRAGMA" {
        if rest.contains('=') {
            return Some("sets a pragma");
        }
        let rest = skip_blank(rest);
        if let Some(open) = rest.find('(') {
            let name = rest[..open].trim();
            let name = name.rsplit('.').next().unwrap_or(name);
            let name = name.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']' || c == '\'');
            if !READING_PRAGMAS.contains(&name.to_ascii_lowercase().as_str()) {
                return Some("sets a pragma");
            }
        }
    }
    None
}

/// The first words of `sql`, for messages.
fn shown(sql: &str) -> String {
    let one_line: String = skip_blank(sql).split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = one_line.chars();
    let head: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn sql_message(path: &Path, e: rusqlite::Error) -> IndexError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) =>
        {
            crate::error::sql_error(path, "running the query", e)
        }
        _ => IndexError::Sql {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    }
}

fn open_sql_connection(path: &Path) -> Result<Connection> {
    let what = "opening a read-only connection";
    let conn = crate::index::open_reader(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .ctx(path, what)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
        .ctx(path, what)?;
    conn.pragma_update(None, "query_only", true).ctx(path, what)?;
    Ok(conn)
}

impl Index {
    /// Runs one SQL statement that only reads (for `vmrr sql`) and returns
    /// the column names and every row. Anything that could write is refused
    /// with [`IndexError::WriteRefused`]; SQL that SQLite rejects returns
    /// [`IndexError::Sql`] with SQLite's message. Runs on a separate
    /// read-only connection, which sees what has been flushed.
    pub fn query_read_only(&self, sql: &str) -> Result<(Vec<String>, Vec<Vec<SqlValue>>)> {
        let rows = self.query_read_only_limited(sql, usize::MAX)?;
        Ok((rows.columns, rows.rows))
    }

    /// [`query_read_only`](Index::query_read_only) that keeps at most
    /// `max_rows` rows and says whether there were more.
    pub fn query_read_only_limited(&self, sql: &str, max_rows: usize) -> Result<SqlRows> {
        let path = self.path.as_path();
        if skip_blank(sql)
            .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
            .is_empty()
        {
            return Err(IndexError::Sql {
                path: path.to_path_buf(),
                message: "no SQL statement given".into(),
            });
        }
        let refused = |reason| IndexError::WriteRefused {
            path: path.to_path_buf(),
            statement: shown(sql),
            reason,
        };
        if let Some(reason) = refusal(sql) {
            return Err(refused(reason));
        }
        if self.sql_conn.get().is_none() {
            let conn = open_sql_connection(path)?;
            let _ = self.sql_conn.set(conn);
        }
        let Some(conn) = self.sql_conn.get() else {
            return Err(IndexError::Sql {
                path: path.to_path_buf(),
                message: "no read-only connection".into(),
            });
        };
        let mut stmt = conn.prepare(sql).map_err(|e| sql_message(path, e))?;
        if !stmt.readonly() {
            return Err(refused("would change the database"));
        }
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        let n = columns.len();
        let mut out = SqlRows {
            columns,
            rows: Vec::new(),
            truncated: false,
        };
        let mut rows = stmt.query([]).map_err(|e| sql_message(path, e))?;
        while let Some(row) = rows.next().map_err(|e| sql_message(path, e))? {
            if out.rows.len() >= max_rows {
                out.truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(SqlValue::from(row.get_ref(i).map_err(|e| sql_message(path, e))?));
            }
            out.rows.push(values);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn refusals() {
        assert!(refusal("SELECT 1").is_none());
        assert!(refusal("  -- hi\n /* x */ select * from events").is_none());
        assert!(refusal("PRAGMA table_info(events)").is_none());
        assert!(refusal("PRAGMA main.index_list('events')").is_none());
        assert!(refusal("PRAGMA user_version").is_none());
        assert!(refusal("attach 'x' as y").is_some());
        assert!(refusal("/* c */ ATTACH 'x' as y").is_some());
        assert!(refusal("DETACH y").is_some());
        assert!(refusal("begin").is_some());
        assert!(refusal("PRAGMA query_only = 0").is_some());
        assert!(refusal("PRAGMA query_only(0)").is_some());
        assert!(refusal("pragma main.user_version=3").is_some());
    }
}
