//! Bookmarks: named positions, written at once (not batched), unique by name.

use rusqlite::{ErrorCode, OptionalExtension, Row};

use crate::error::{IndexError, Result, SqlContext};
use crate::query::{get_u64, CLUSTER_ORDER};
use crate::rows::{BookmarkRow, VmId};
use crate::write::int;
use crate::Index;

const BOOKMARK_COLS: &str = "id, name, note, vm, icount, vtime_ns, created";

fn bookmark_from_row(r: &Row<'_>) -> rusqlite::Result<BookmarkRow> {
    Ok(BookmarkRow {
        id: get_u64(r, 0)?,
        name: r.get(1)?,
        note: r.get(2)?,
        vm: r.get(3)?,
        icount: get_u64(r, 4)?,
        vtime_ns: get_u64(r, 5)?,
        created: r.get(6)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// Longest bookmark name, in characters: a name is a label, not a note.
pub const MAX_BOOKMARK_NAME_CHARS: usize = 200;

impl Index {
    /// A bookmark name as stored: trimmed, non-empty, at most
    /// [`MAX_BOOKMARK_NAME_CHARS`], no control characters (they would reach
    /// the terminal raw wherever bookmarks are listed). Spaces and `#` are
    /// fine: `late #5` is a good name.
    fn checked_name(&self, name: &str) -> Result<String> {
        let name = name.trim();
        let bad = |problem: String| IndexError::BadBookmarkName {
            path: self.path.clone(),
            problem,
        };
        if name.is_empty() {
            return Err(IndexError::EmptyBookmarkName {
                path: self.path.clone(),
            });
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(bad(format!(
                "contains a control character (U+{:04X}); use printable characters",
                c as u32
            )));
        }
        let chars = name.chars().count();
        if chars > MAX_BOOKMARK_NAME_CHARS {
            return Err(bad(format!(
                "has {chars} characters; at most {MAX_BOOKMARK_NAME_CHARS} (put the rest in the note)"
            )));
        }
        Ok(name.to_string())
    }

    /// Adds a bookmark named `name` (trimmed; must be non-empty and unused)
    /// at `(vm, icount)`, virtual time `vtime_ns`, and returns it.
    pub fn add_bookmark(
        &self,
        name: &str,
        note: &str,
        vm: VmId,
        icount: u64,
        vtime_ns: u64,
    ) -> Result<BookmarkRow> {
        self.require_writable("add bookmarks")?;
        let name = self.checked_name(name)?;
        let p = &self.path;
        let icount_i = int(p, "bookmark icount", icount)?;
        let vtime_i = int(p, "bookmark vtime_ns", vtime_ns)?;
        let created = crate::time::now_rfc3339();
        let result = self.conn.execute(
            "INSERT INTO bookmarks(name, note, vm, icount, vtime_ns, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (&name, note, vm, icount_i, vtime_i, &created),
        );
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(IndexError::DuplicateBookmark {
                    path: p.clone(),
                    name,
                })
            }
            Err(e) => return Err(crate::error::sql_error(p, "adding a bookmark", e)),
        }
        Ok(BookmarkRow {
            id: self.conn.last_insert_rowid().max(0) as u64,
            name,
            note: note.to_string(),
            vm,
            icount,
            vtime_ns,
            created,
        })
    }

    /// Renames the bookmark `old` to `new` (trimmed, non-empty, unused).
    pub fn rename_bookmark(&self, old: &str, new: &str) -> Result<()> {
        self.require_writable("rename bookmarks")?;
        let new = self.checked_name(new)?;
        let old = old.trim();
        let p = &self.path;
        match self
            .conn
            .execute("UPDATE bookmarks SET name = ?2 WHERE name = ?1", (old, &new))
        {
            Ok(0) => Err(IndexError::NoSuchBookmark {
                path: p.clone(),
                name: old.to_string(),
            }),
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(IndexError::DuplicateBookmark {
                path: p.clone(),
                name: new,
            }),
            Err(e) => Err(crate::error::sql_error(p, "renaming a bookmark", e)),
        }
    }

    /// Replaces the note of the bookmark `name`.
    pub fn set_bookmark_note(&self, name: &str, note: &str) -> Result<()> {
        self.require_writable("edit bookmarks")?;
        let name = name.trim();
        let n = self
            .conn
            .execute("UPDATE bookmarks SET note = ?2 WHERE name = ?1", (name, note))
            .ctx(&self.path, "editing a bookmark")?;
        if n == 0 {
            return Err(IndexError::NoSuchBookmark {
                path: self.path.clone(),
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Deletes the bookmark `name`.
    pub fn delete_bookmark(&self, name: &str) -> Result<()> {
        self.require_writable("delete bookmarks")?;
        let name = name.trim();
        let n = self
            .conn
            .execute("DELETE FROM bookmarks WHERE name = ?1", [name])
            .ctx(&self.path, "deleting a bookmark")?;
        if n == 0 {
            return Err(IndexError::NoSuchBookmark {
                path: self.path.clone(),
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Every bookmark, in the cluster order of their positions.
    pub fn bookmarks(&self) -> Result<Vec<BookmarkRow>> {
        let p = &self.path;
        let what = "reading bookmarks";
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {BOOKMARK_COLS} FROM bookmarks ORDER BY {CLUSTER_ORDER}"
            ))
            .ctx(p, what)?;
        let rows = stmt.query_map([], bookmark_from_row).ctx(p, what)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(p, what)
    }

    /// The bookmark named `name` (trimmed).
    pub fn bookmark_by_name(&self, name: &str) -> Result<Option<BookmarkRow>> {
        self.conn
            .query_row(
                &format!("SELECT {BOOKMARK_COLS} FROM bookmarks WHERE name = ?1"),
                [name.trim()],
                bookmark_from_row,
            )
            .optional()
            .ctx(&self.path, "reading a bookmark")
    }
}
