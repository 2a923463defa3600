//! The data directory as a whole: its identity (`meta.properties`), the clean-shutdown
//! marker that lets the next start skip recovery, and the claim a partition directory carries
//! (`partition.metadata`) so a stale directory of a deleted topic is never mistaken for a new
//! one of the same name.
//!
//! Durability: every file here is written with [`write_atomic`] (temporary file, fsync,
//! rename, directory fsync), and the marker's removal at start is made durable before any log
//! is written — otherwise a power cut could bring a stale marker back and the next start would
//! trust indexes and log ends that were never synced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::IoContext;
use crate::storage::{create_dir_durable, write_atomic, Storage};
use crate::LogError;

/// Present only between a clean stop and the next start.
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";
/// The node's identity: `cluster.id` and `node.id`.
pub const META_PROPERTIES: &str = "meta.properties";
/// A partition directory's claim: which topic id it belongs to.
pub const PARTITION_METADATA: &str = "partition.metadata";

/// An open data directory.
#[derive(Debug)]
pub struct DataDir {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    node_id: i32,
    /// None until a node of a cluster has joined it (see [`DataDir::adopt_cluster_id`]).
    cluster_id: std::sync::Mutex<Option<String>>,
    /// Whether the previous run stopped cleanly (its marker was found, and is now removed).
    clean: bool,
}

/// A `key=value` line of a properties file.
fn property<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

fn write_meta(fs: &dyn Storage, meta: &Path, cluster_id: Option<&str>, node_id: i32) -> Result<(), LogError> {
    let text = format!(
        "#Written by nurt\nversion=1\ncluster.id={}\nnode.id={node_id}\n",
        cluster_id.unwrap_or_default()
    );
    write_atomic(fs, meta, text.as_bytes()).at(meta)
}

impl DataDir {
    /// Opens (creating) the data directory of node `node_id`. A new directory gets
    /// `meta.properties` with `new_cluster_id()` (None: the node learns it when it joins its
    /// cluster); an existing one must belong to `node_id`.
    /// The clean-shutdown marker is consumed: [`DataDir::was_clean`] says whether it was there.
    pub fn open(
        storage: Arc<dyn Storage>,
        path: &Path,
        node_id: i32,
        new_cluster_id: impl FnOnce() -> Option<String>,
    ) -> Result<Self, LogError> {
        let fs = &*storage;
        create_dir_durable(fs, path).at(path)?;
        let meta = path.join(META_PROPERTIES);
        let cluster_id = match fs.read(&meta) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let stored_node = property(&text, "node.id").and_then(|v| v.parse::<i32>().ok());
                if let Some(stored) = stored_node.filter(|&n| n != node_id) {
                    return Err(LogError::Identity(format!(
                        "{} has node.id={stored}, this node is node.id={node_id}",
                        meta.display()
                    )));
                }
                property(&text, "cluster.id")
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let cluster_id = new_cluster_id();
                write_meta(fs, &meta, cluster_id.as_deref(), node_id)?;
                cluster_id
            }
            Err(e) => return Err(e).at(&meta),
        };
        let marker = path.join(CLEAN_SHUTDOWN_FILE);
        let clean = fs.exists(&marker);
        if clean {
            // From here on a crash is unclean again, and must stay so after a power cut.
            fs.remove_file(&marker).at(&marker)?;
            fs.sync_dir(path).at(path)?;
        }
        Ok(Self {
            storage,
            path: path.to_path_buf(),
            node_id,
            cluster_id: std::sync::Mutex::new(cluster_id),
            clean,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The storage it lives on.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The cluster id from `meta.properties`, if the node has one yet.
    pub fn cluster_id(&self) -> Option<String> {
        self.cluster_id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records, durably, that this directory belongs to cluster `cluster_id`. A directory
    /// that already belongs to another cluster is refused.
    pub fn adopt_cluster_id(&self, cluster_id: &str) -> Result<(), LogError> {
        let mut current = self.cluster_id.lock().unwrap_or_else(|p| p.into_inner());
        match current.as_deref() {
            Some(c) if c == cluster_id => Ok(()),
            Some(c) => Err(LogError::Identity(format!(
                "{} belongs to cluster {c}, not to cluster {cluster_id}",
                self.path.display()
            ))),
            None => {
                let meta = self.path.join(META_PROPERTIES);
                write_meta(&*self.storage, &meta, Some(cluster_id), self.node_id)?;
                *current = Some(cluster_id.to_string());
                Ok(())
            }
        }
    }

    /// Whether the previous run shut down cleanly (logs may trust their indexes).
    pub fn was_clean(&self) -> bool {
        self.clean
    }

    /// Marks a clean shutdown, durably. Call after every log was closed.
    pub fn mark_clean(&self) -> Result<(), LogError> {
        let marker = self.path.join(CLEAN_SHUTDOWN_FILE);
        write_atomic(&*self.storage, &marker, b"").at(&marker)
    }

    /// Makes sure `dir` (inside the data directory) belongs to the topic whose id is
    /// `topic_id_hex`: a leftover directory of an older topic of the same name is removed
    /// first. Returns once the directory and its claim are durable.
    pub fn claim_partition_dir(&self, dir: &Path, topic_id_hex: &str) -> Result<(), LogError> {
        let fs = &*self.storage;
        let file = dir.join(PARTITION_METADATA);
        let expected = format!("version: 0\ntopic_id: {topic_id_hex}\n");
        match fs.read(&file) {
            Ok(bytes) if bytes == expected.as_bytes() => return Ok(()),
            Ok(_) => {
                fs.remove_dir_all(dir).at(dir)?;
                fs.sync_dir(&self.path).at(&self.path)?;
            }
            Err(_) => {}
        }
        create_dir_durable(fs, dir).at(dir)?;
        write_atomic(fs, &file, expected.as_bytes()).at(&file)
    }
}
