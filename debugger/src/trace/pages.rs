//! The page store: guest memory pages, content-addressed by their blake3
//! hash and compressed with zstd, shared by every checkpoint and every VM of
//! a trace. A page file is written once (to a temporary name, then renamed,
//! so a crash never leaves half a page) and verified against its name on read.

use std::path::{Path, PathBuf};

use super::TraceError;

/// Bytes in a page.
pub const PAGE_BYTES: usize = 4096;

/// The `pages/` folder of a trace.
#[derive(Debug, Clone)]
pub struct PageStore {
    root: PathBuf,
}

/// Hex of a page's blake3 hash: its name in the store.
pub fn page_hash(page: &[u8]) -> String {
    blake3::hash(page).to_hex().to_string()
}

impl PageStore {
    /// The store in `root` (created if missing).
    pub fn open(root: &Path) -> Result<PageStore, TraceError> {
        std::fs::create_dir_all(root).map_err(|e| TraceError::io(root, e))?;
        Ok(PageStore {
            root: root.to_path_buf(),
        })
    }

    fn path_of(&self, hash: &str) -> PathBuf {
        let prefix = hash.get(..2).unwrap_or("00");
        self.root.join(prefix).join(format!("{hash}.zst"))
    }

    /// Stores `page` if it is not there yet; returns its hash.
    pub fn put(&self, page: &[u8]) -> Result<String, TraceError> {
        let hash = page_hash(page);
        let path = self.path_of(&hash);
        if path.exists() {
            return Ok(hash);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TraceError::io(dir, e))?;
        }
        let packed = zstd::encode_all(page, 3).map_err(|e| TraceError::io(&path, e))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, packed).map_err(|e| TraceError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| TraceError::io(&path, e))?;
        Ok(hash)
    }

    /// Reads the page called `hash`, checking that its contents still have that hash.
    pub fn get(&self, hash: &str) -> Result<Vec<u8>, TraceError> {
        // A hash comes from a checkpoint file: it must not name a path.
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TraceError::Damaged {
                path: self.root.clone(),
                problem: format!(
                    "a checkpoint names the page '{}', which is not a page address",
                    crate::describe::printable(hash)
                ),
            });
        }
        let path = self.path_of(hash);
        let packed = std::fs::read(&path).map_err(|e| TraceError::Damaged {
            path: path.clone(),
            problem: format!("memory page is missing or unreadable ({e})"),
        })?;
        let page = unpack_limited(&packed, PAGE_BYTES as u64).map_err(|e| TraceError::Damaged {
            path: path.clone(),
            problem: format!("memory page does not decompress ({e})"),
        })?;
        if page.len() != PAGE_BYTES || page_hash(&page) != hash {
            return Err(TraceError::Damaged {
                path,
                problem: "memory page contents do not match its hash".into(),
            });
        }
        Ok(page)
    }

    /// Total bytes of all page files.
    pub fn bytes(&self) -> u64 {
        dir_bytes(&self.root)
    }
}

/// Decompresses zstd `packed`, refusing more than `limit` bytes of output: a
/// few bytes of a hostile file cannot unpack to gigabytes.
pub fn unpack_limited(packed: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::with_buffer(packed)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "unpacks to more than {limit} bytes"
        )));
    }
    Ok(out)
}

/// Bytes of all files below `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_dedup_and_damage() {
        let dir = std::env::temp_dir().join(format!("vmrr-pages-{}", std::process::id()));
        let store = PageStore::open(&dir).unwrap();
        let mut page = vec![0u8; PAGE_BYTES];
        page[7] = 42;
        let h1 = store.put(&page).unwrap();
        let h2 = store.put(&page).unwrap();
        assert_eq!(h1, h2);
        assert_eq!(store.get(&h1).unwrap(), page);
        std::fs::write(
            store.path_of(&h1),
            zstd::encode_all(&[1u8; PAGE_BYTES][..], 3).unwrap(),
        )
        .unwrap();
        let e = store.get(&h1).unwrap_err().to_string();
        assert!(e.contains("do not match its hash"), "{e}");
        std::fs::remove_file(store.path_of(&h1)).unwrap();
        let e = store.get(&h1).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
