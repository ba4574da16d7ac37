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
         );
         CREATE TABLE IF NOT EXISTS step_history (
             step TEXT PRIMARY KEY,
             key TEXT NOT NULL
         );",
    )?;
    migrate(&conn)?;
    Ok(conn)
}

/// Columns added after the first schema: `last_used` (unix nanoseconds of the last hit, for
/// `kiln prune --keep-storage`) and `rootfs` (JSON layers an image-source record pins, so
/// `kiln prune` keeps a base image's layers). Added under an immediate transaction so
/// concurrent processes do not race on `ALTER TABLE`.
fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    let has = |conn: &Connection, col: &str| -> Result<bool, rusqlite::Error> {
        let mut stmt =
            conn.prepare("SELECT 1 FROM pragma_table_info('cache_records') WHERE name = ?1")?;
        stmt.exists(params![col])
    };
    if has(conn, "last_used")? && has(conn, "rootfs")? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for col in ["last_used INTEGER", "rootfs TEXT"] {
            let name = col.split(' ').next().unwrap_or(col);
            if !has(conn, name)? {
                conn.execute_batch(&format!("ALTER TABLE cache_records ADD COLUMN {col}"))?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A record as garbage collection sees it.
#[derive(Debug, Clone)]
pub(crate) struct GcRecord {
    /// The cache key.
    pub(crate) key: String,
    /// Every layer the record keeps alive: its own layer, or an image source's layers.
    pub(crate) layers: Vec<LayerRef>,
    /// Unix nanoseconds of the last use (the creation when never hit since).
    pub(crate) last_used: i64,
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
            "INSERT OR REPLACE INTO cache_records (key, layer, created, preimage, last_used)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, layer, record.created, record.preimage, now_ns()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Notes that `key`'s record was used now (a cache hit), for least-recently-used pruning.
    pub fn touch(&self, key: &str) -> Result<(), IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "UPDATE cache_records SET last_used = ?2 WHERE key = ?1",
            params![key, now_ns()],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The key the step named `step` had when it was last built (`--explain`).
    pub fn step_key(&self, step: &str) -> Result<Option<String>, IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row(
            "SELECT key FROM step_history WHERE step = ?1",
            params![step],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Remembers `key` as the step's latest.
    pub fn set_step_key(&self, step: &str, key: &str) -> Result<(), IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO step_history (step, key) VALUES (?1, ?2)",
            params![step, key],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records the layers an image-source record stands for, so pruning keeps them.
    pub fn set_rootfs(&self, key: &str, layers: &[LayerRef]) -> Result<(), IndexError> {
        let text = serde_json::to_string(layers).map_err(|source| IndexError::Corrupt {
            key: key.to_string(),
            source,
        })?;
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "UPDATE cache_records SET rootfs = ?2 WHERE key = ?1",
            params![key, text],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every record with the layers it keeps alive, least recently used first. A record whose
    /// layer text does not parse keeps nothing (it is unusable anyway).
    pub(crate) fn gc_records(&self) -> Result<Vec<GcRecord>, IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare(
                "SELECT key, layer, rootfs, last_used FROM cache_records
                 ORDER BY COALESCE(last_used, 0), created, key",
            )
            .map_err(|e| self.err(e))?;
        type Row = (String, Option<String>, Option<String>, Option<i64>);
        let rows: Vec<Row> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(key, layer, rootfs, last_used)| {
                let mut layers: Vec<LayerRef> = Vec::new();
                if let Some(l) = layer.and_then(|t| serde_json::from_str(&t).ok()) {
                    layers.push(l);
                }
                if let Some(ls) =
                    rootfs.and_then(|t| serde_json::from_str::<Vec<LayerRef>>(&t).ok())
                {
                    layers.extend(ls);
                }
                // Records from before `last_used` existed count as the oldest.
                let last_used = last_used.unwrap_or(0);
                GcRecord {
                    key,
                    layers,
                    last_used,
                }
            })
            .collect())
    }

    /// Deletes the records of `keys` in one transaction (all or none).
    pub(crate) fn delete_records(&self, keys: &[String]) -> Result<(), IndexError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut stmt = tx
                .prepare("DELETE FROM cache_records WHERE key = ?1")
                .map_err(|e| self.err(e))?;
            for key in keys {
                stmt.execute(params![key]).map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Forgets every build context's stat cache (its files are hashed again next time).
    pub(crate) fn clear_stat_cache(&self) -> Result<usize, IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute("DELETE FROM context_files", [])
            .map_err(|e| self.err(e))
    }
}
