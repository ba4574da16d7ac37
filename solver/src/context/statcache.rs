//! A persistent map from a context file's stat to its content digest, so unchanged files are
//! not read again.
//!
//! Git's racy-timestamp rule applies: a file whose mtime is not safely older than the moment
//! its digest was recorded may have changed within the same timestamp tick, so it is re-hashed.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// How much older than the recording time a file's mtime must be to trust the record
/// (covers coarse file-system timestamp ticks).
const RACY_MARGIN_NS: i64 = 1_000_000_000;

/// The stat fields that must match for a record to be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ino: u64,
    pub(crate) mode: u32,
}

/// A freshly computed digest to store.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) path: String,
    pub(crate) stat: Stat,
    pub(crate) sha256: String,
}

/// The stat cache, kept in a SQLite database (kiln uses `<root>/index.sqlite`).
#[derive(Debug)]
pub struct StatCache {
    conn: Mutex<Connection>,
}

impl StatCache {
    /// Opens (creating) the cache table in the database at `db`.
    pub fn open(db: &Path) -> Result<Self, rusqlite::Error> {
        let conn = crate::index::open_connection(db)?;
        Ok(StatCache {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The recorded sha256 of `path` under `root` if its stat still matches and the record is
    /// not racy.
    pub(crate) fn lookup(
        &self,
        root: &Path,
        path: &str,
        stat: &Stat,
    ) -> Result<Option<String>, rusqlite::Error> {
        let row: Option<(i64, i64, i64, i64, String, i64)> = self
            .conn()
            .query_row(
                "SELECT size, mtime_ns, ino, mode, sha256, recorded_ns FROM context_files
                 WHERE root = ?1 AND path = ?2",
                params![root.to_string_lossy(), path],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(|(size, mtime, ino, mode, sha, recorded)| {
            let same = size as u64 == stat.size
                && mtime == stat.mtime_ns
                && ino as u64 == stat.ino
                && mode as u32 == stat.mode;
            let safe = stat.mtime_ns < recorded.saturating_sub(RACY_MARGIN_NS);
            (same && safe).then_some(sha)
        }))
    }

    /// Stores freshly computed digests in one short transaction; `read_start` is when reading
    /// them began (nanoseconds since the epoch, see [`now_ns`]), the time the racy rule compares
    /// mtimes with.
    pub(crate) fn store(
        &self,
        root: &Path,
        records: &[Record],
        read_start: i64,
    ) -> Result<(), rusqlite::Error> {
        if records.is_empty() {
            return Ok(());
        }
        let now = read_start;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO context_files
                 (root, path, size, mtime_ns, ino, mode, sha256, recorded_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let root = root.to_string_lossy();
            for r in records {
                stmt.execute(params![
                    root,
                    r.path,
                    r.stat.size as i64,
                    r.stat.mtime_ns,
                    r.stat.ino as i64,
                    r.stat.mode,
                    r.sha256,
                    now
                ])?;
            }
        }
        tx.commit()
    }
}

/// Nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
