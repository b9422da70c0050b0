//! Bookmarks: named positions stored in the trace's index.

use vmrr_index::BookmarkRow;

use super::{Session, SessionError};

impl Session {
    /// Adds a bookmark at the focus VM's position.
    pub fn add_bookmark(&mut self, name: &str, note: &str) -> Result<BookmarkRow, SessionError> {
        let p = self.position(self.focus)?;
        let row = self
            .trace
            .index()
            .add_bookmark(name, note, p.vm, p.icount, p.vtime_ns)?;
        self.generation += 1;
        Ok(row)
    }

    /// Whether the trace was opened read-only (it is on a read-only mount or
    /// not writable by this user): bookmarks can be listed, not changed.
    pub fn is_read_only(&self) -> bool {
        self.trace.index().is_read_only()
    }

    /// All bookmarks, in the cluster order of their positions.
    pub fn bookmarks(&self) -> Result<Vec<BookmarkRow>, SessionError> {
        Ok(self.trace.index().bookmarks()?)
    }

    /// Renames a bookmark.
    pub fn rename_bookmark(&mut self, old: &str, new: &str) -> Result<(), SessionError> {
        self.trace.index().rename_bookmark(old, new)?;
        self.generation += 1;
        Ok(())
    }

    /// Deletes a bookmark.
    pub fn delete_bookmark(&mut self, name: &str) -> Result<(), SessionError> {
        self.trace.index().delete_bookmark(name)?;
        self.generation += 1;
        Ok(())
    }
}
