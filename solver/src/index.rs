//! The persistent cache index: `<root>/index.sqlite`.
//!
//! SQLite in WAL mode so several kiln processes can read and write at once; every statement
//! commits on its own (no transaction is held across a worker call). Digest-named blobs are
//! the truth: a record only points at them.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use kiln_ir::LayerRef;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite reported an error.
    #[error("cache index {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored layer record does not parse.
    #[error("cache index: corrupt record for key {key}: {source}")]
    Corrupt {
        /// The cache key.
        key: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// Opens a connection with kiln's settings and makes sure the schema exists.
pub(crate) fn open_connection(db: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS cache_records (
             key TEXT PRIMARY KEY,
             layer TEXT,
             created TEXT NOT NULL,
             preimage TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS context_files (
             root TEXT NOT NULL,
             path TEXT NOT NULL,
             size INTEGER NOT NULL,
             mtime_ns INTEGER NOT NULL,
             ino INTEGER NOT NULL,
             mode INTEGER NOT NULL,
             sha256 TEXT NOT NULL,
             recorded_ns INTEGER NOT NULL,
             PRIMARY KEY (root, path)
         );",
    )?;
    Ok(conn)
}

/// One stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// The layer the step added, or `None` when it added none.
    pub layer: Option<LayerRef>,
    /// When the step first ran (RFC 3339, UTC).
    pub created: String,
    /// The JSON text the key was hashed from.
    pub preimage: String,
}

/// The cache-record table.
#[derive(Debug)]
pub struct CacheIndex {
    path: String,
    conn: Mutex<Connection>,
}

impl CacheIndex {
    /// Opens (creating) the index at `db`.
    pub fn open(db: &Path) -> Result<Self, IndexError> {
        let path = db.display().to_string();
        let conn = open_connection(db).map_err(|source| IndexError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Ok(CacheIndex {
            path,
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// The record for `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<CacheRecord>, IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let row: Option<(Option<String>, String, String)> = conn
            .query_row(
                "SELECT layer, created, preimage FROM cache_records WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        drop(conn);
        let Some((layer, created, preimage)) = row else {
            return Ok(None);
        };
        let layer = match layer {
            Some(text) => {
                Some(
                    serde_json::from_str(&text).map_err(|source| IndexError::Corrupt {
                        key: key.to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(Some(CacheRecord {
            layer,
            created,
            preimage,
        }))
    }

    /// Stores (or overwrites) the record for `key`.
    pub fn put(&self, key: &str, record: &CacheRecord) -> Result<(), IndexError> {
        let layer = match &record.layer {
            Some(l) => Some(
                serde_json::to_string(l).map_err(|source| IndexError::Corrupt {
                    key: key.to_string(),
                    source,
                })?,
            ),
            None => None,
        };
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO cache_records (key, layer, created, preimage)
             VALUES (?1, ?2, ?3, ?4)",
            params![key, layer, record.created, record.preimage],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
