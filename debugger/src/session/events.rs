//! Events as seen from the cursor: which have happened, and the other VM of
//! a frame event.

use vmrr_index::{EventFilter, EventRow, Position};

use super::{Session, SessionError, VmId};
use crate::describe::EventContext;

impl Session {
    /// Up to `count` events passing `filter` that have happened at the
    /// cursor (the latest ones, oldest first) and up to `count` that have
    /// not (the next ones).
    pub fn events_near(
        &self,
        filter: &EventFilter,
        count: usize,
    ) -> Result<(Vec<EventRow>, Vec<EventRow>), SessionError> {
        let cursor = self.cursor.pos;
        let index = self.trace.index();
        let mut before = Vec::new();
        let mut at = Position {
            pos: cursor,
            event: Some(u64::MAX),
        };
        while before.len() < count {
            match index.prev_event_before(None, at, filter)? {
                Some(e) => {
                    at = e.position();
                    if e.happened_at(cursor) {
                        before.push(e);
                    }
                }
                None => break,
            }
        }
        before.reverse();
        let mut after = Vec::new();
        let mut at = Position::from(cursor);
        while after.len() < count {
            match index.next_event_after(None, at, filter)? {
                Some(e) => {
                    at = e.position();
                    if !e.happened_at(cursor) {
                        after.push(e);
                    }
                }
                None => break,
            }
        }
        Ok((before, after))
    }

    /// The VMs at the other end of a frame event (see `Index::frame_peers`).
    pub fn event_peers(&self, e: &EventRow) -> Result<Vec<VmId>, SessionError> {
        Ok(self.trace.index().frame_peers(e)?)
    }

    /// What the index knows about an event beyond its row (a frame's peers
    /// and packet), for `describe::event_line_with`.
    pub fn event_context(&self, e: &EventRow) -> Result<EventContext, SessionError> {
        Ok(EventContext::of(&self.trace.index(), e)?)
    }
}
