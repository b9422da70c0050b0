//! Bookmarks: add, list, find, rename, annotate, delete, and the errors.

mod common;

use common::*;
use vmrr_index::{Index, IndexError};

#[test]
fn bookmark_crud() {
    let s = Scratch::new("bookmarks");
    let path = s.index_path();
    let index = Index::create(&path).unwrap();
    let a = index
        .add_bookmark("send", "first ping", 0, 300, vtime(0, 300))
        .unwrap();
    let b = index.add_bookmark("  boot  ", "", 2, 0, 0).unwrap();
    assert_eq!(b.name, "boot", "names are trimmed");
    assert!(a.id >= 1 && b.id > a.id);
    assert!(a.created.ends_with('Z') && a.created.len() == 20, "{}", a.created);
    // listed in the cluster order of their positions
    assert_eq!(
        index
            .bookmarks()
            .unwrap()
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>(),
        vec!["boot", "send"]
    );
    assert_eq!(index.bookmark_by_name("send").unwrap(), Some(a.clone()));
    assert_eq!(index.bookmark_by_name("nope").unwrap(), None);

    // duplicate name: a clear error, nothing changed
    let err = index.add_bookmark("send", "again", 1, 5, 55).unwrap_err();
    assert!(
        matches!(&err, IndexError::DuplicateBookmark { name, .. } if name == "send"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("'send' already exists") && msg.contains("index.sqlite"),
        "{msg}"
    );
    assert_eq!(index.bookmarks().unwrap().len(), 2);

    // rename
    index.rename_bookmark("send", "ping").unwrap();
    assert_eq!(index.bookmark_by_name("send").unwrap(), None);
    let renamed = index.bookmark_by_name("ping").unwrap().unwrap();
    assert_eq!((renamed.id, renamed.icount), (a.id, 300));
    let err = index.rename_bookmark("ping", "boot").unwrap_err();
    assert!(
        matches!(&err, IndexError::DuplicateBookmark { name, .. } if name == "boot"),
        "{err}"
    );
    let err = index.rename_bookmark("ghost", "x").unwrap_err();
    assert!(
        matches!(&err, IndexError::NoSuchBookmark { name, .. } if name == "ghost"),
        "{err}"
    );
    assert!(err.to_string().contains("no bookmark named 'ghost'"));
    let err = index.rename_bookmark("ping", "   ").unwrap_err();
    assert!(matches!(err, IndexError::EmptyBookmarkName { .. }), "{err}");

    // note
    index.set_bookmark_note("ping", "the ping that is lost").unwrap();
    assert_eq!(
        index.bookmark_by_name("ping").unwrap().unwrap().note,
        "the ping that is lost"
    );
    assert!(matches!(
        index.set_bookmark_note("ghost", "x"),
        Err(IndexError::NoSuchBookmark { .. })
    ));

    // delete
    index.delete_bookmark("ping").unwrap();
    assert_eq!(index.bookmark_by_name("ping").unwrap(), None);
    assert!(matches!(
        index.delete_bookmark("ping"),
        Err(IndexError::NoSuchBookmark { .. })
    ));
    assert_eq!(index.bookmarks().unwrap().len(), 1);
    // a deleted name can be used again
    index.add_bookmark("ping", "", 0, 1, 10).unwrap();

    // empty names
    assert!(matches!(
        index.add_bookmark("", "", 0, 0, 0),
        Err(IndexError::EmptyBookmarkName { .. })
    ));

    // bookmarks are written at once, not batched
    drop(index);
    let index = Index::open_read_only(&path).unwrap();
    assert_eq!(index.bookmarks().unwrap().len(), 2);
}

/// Bookmark names are labels shown on a terminal: spaces and `#` are fine,
/// control characters and novels are not. (Issue 12: hostile names.)
#[test]
fn bookmark_names_refuse_control_characters_and_great_length() {
    let s = Scratch::new("bookmark-names");
    let index = Index::create(s.index_path()).unwrap();
    let b = index.add_bookmark("late #5", "", 0, 10, 100).unwrap();
    assert_eq!(b.name, "late #5");
    for bad in ["bell\x07", "esc\x1b[2J", "new\nline", "tab\there"] {
        let err = index.add_bookmark(bad, "", 0, 11, 110).unwrap_err();
        assert!(
            matches!(err, IndexError::BadBookmarkName { .. }),
            "{bad:?}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("control character (U+00"), "{msg}");
        assert!(
            !msg.chars().any(|c| c.is_control()),
            "the message stays printable: {msg:?}"
        );
    }
    let long = "x".repeat(201);
    let err = index.add_bookmark(&long, "", 0, 12, 120).unwrap_err();
    assert!(err.to_string().contains("201 characters; at most 200"), "{err}");
    assert!(
        index.add_bookmark(&"é".repeat(200), "", 0, 13, 130).is_ok(),
        "200 characters, not bytes"
    );
    let err = index.rename_bookmark("late #5", "x\x1b").unwrap_err();
    assert!(matches!(err, IndexError::BadBookmarkName { .. }), "{err}");
    let err = index.add_bookmark("   ", "", 0, 14, 140).unwrap_err();
    assert!(matches!(err, IndexError::EmptyBookmarkName { .. }), "{err}");
    assert_eq!(index.bookmarks().unwrap().len(), 2);
}
