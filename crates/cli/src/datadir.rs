//! The data directory: `DIR/phalanx.db` (SQLite) and, later, configuration and keys.

use anyhow::Context;
use phalanx_store::{SqliteStore, Store};
use std::path::Path;

pub use phalanx_node::{DEFAULT_API_ROOT, now_micros};

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

/// Opens the node (service layer) over the data directory's store, with the sharing
/// defaults of `DIR/phalanx.toml` (so the CLI decides as the server does).
pub fn open_node(dir: &Path) -> anyhow::Result<phalanx_node::Node> {
    let store = open(dir)?;
    let file = crate::serve::load_config(dir, None)?;
    let cfg = phalanx_node::NodeConfig {
        sharing: file.sharing.defaults()?,
        ..phalanx_node::NodeConfig::default()
    };
    Ok(phalanx_node::Node::new(std::sync::Arc::new(store), cfg)?)
}
