//! The data directory: `DIR/phalanx.db` (SQLite) and, later, configuration and keys.

use anyhow::Context;
use phalanx_store::{SqliteStore, Store};
use std::path::Path;

/// The API root every node has.
pub const DEFAULT_API_ROOT: &str = "default";

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "phalanx.db";

/// Opens the node's store, creating the directory, the store and the default API root on
/// first use.
pub fn open(dir: &Path) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let path = dir.join(STORE_FILE);
    let store = SqliteStore::open(&path)
        .with_context(|| format!("cannot open store {}", path.display()))?;
    store.ensure_api_root(DEFAULT_API_ROOT, "Phalanx default API root")?;
    Ok(store)
}

/// The wall clock in microseconds since the epoch (the store takes time as an argument).
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
