//! The metadata quorum's state machine: the metadata image. Applying an entry decodes its
//! records (a record this binary cannot read stops the node with a clear error, never a
//! misreading) and applies them in order; the image is shared with the broker, which learns of
//! every change through a watch of the last applied index.
//!
//! Snapshots (`snapshot.rs`) are the image as records; they make a restart and a new node's
//! catch-up cost O(image), not O(history). The latest one is kept in `snapshot` next to the
//! log, written atomically.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use futures_util::{Stream, StreamExt};
use nurt_log::storage::write_atomic;
use nurt_log::Storage;
use nurt_metadata::{MetadataImage, MetadataRecord};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StoredMembership};
use tokio::sync::watch;

use super::snapshot;
use super::types::{Applied, LogId, Membership, Snapshot, SnapshotData, SnapshotMeta, C};

const SNAPSHOT_FILE: &str = "snapshot";

/// The image and how far it has been applied, shared with the broker.
#[derive(Debug)]
pub struct SharedImage {
    image: RwLock<MetadataImage>,
    /// The last applied Raft index + 1 (0 before anything), bumped after every apply.
    applied: watch::Sender<u64>,
}

impl SharedImage {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            image: RwLock::new(MetadataImage::default()),
            applied: watch::channel(0).0,
        })
    }

    /// A read view of the image.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, MetadataImage> {
        self.image.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes whenever entries were applied; the value is the last applied index + 1.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The last applied index + 1.
    pub fn applied_offset(&self) -> u64 {
        *self.applied.borrow()
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    last_applied: Option<LogId>,
    membership: Membership,
    current: Option<(SnapshotMeta, SnapshotData)>,
}

/// The state machine; clones share it (the snapshot builder is a clone).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    shared: Arc<SharedImage>,
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine").finish_non_exhaustive()
    }
}

impl StateMachine {
    /// A state machine with an empty image; the latest snapshot in `dir` is offered to
    /// openraft, which installs it and replays the log after it.
    pub fn open(storage: &Arc<dyn Storage>, dir: &Path) -> io::Result<Self> {
        let current = match storage.read(&dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => Some(snapshot::decode_file(&bytes)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                storage: Arc::clone(storage),
                dir: dir.to_path_buf(),
                last_applied: None,
                membership: Membership::default(),
                current,
            })),
            shared: SharedImage::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The image, shared with the broker.
    pub fn shared(&self) -> Arc<SharedImage> {
        Arc::clone(&self.shared)
    }

    fn save(&self, inner: &mut Inner, meta: SnapshotMeta, data: SnapshotData) -> io::Result<()> {
        let path = inner.dir.join(SNAPSHOT_FILE);
        write_atomic(&*inner.storage, &path, &snapshot::encode_file(&meta, &data)?)?;
        inner.current = Some((meta, data));
        Ok(())
    }
}

/// Applies one entry's records to `image`. Records come from a leader that validated them
/// against this very image, so a failure means corrupt or newer data: the node stops.
fn apply_records(image: &mut MetadataImage, records: &[Vec<u8>], index: u64) -> io::Result<()> {
    for bytes in records {
        let record = MetadataRecord::decode(bytes).map_err(|e| {
            tracing::error!("metadata entry {index} cannot be applied: {e}");
            io::Error::new(io::ErrorKind::InvalidData, format!("metadata entry {index}: {e}"))
        })?;
        image.apply(&record).map_err(|e| {
            tracing::error!("metadata entry {index} does not fit the image: {e}");
            io::Error::new(io::ErrorKind::InvalidData, format!("metadata entry {index}: {e}"))
        })?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<C> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let (meta, data) = {
            let inner = self.lock();
            let image = self.shared.read();
            let meta = SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
            };
            (meta, snapshot::encode_image(&image))
        };
        let mut inner = self.lock();
        self.save(&mut inner, meta.clone(), data.clone())?;
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), io::Error> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut last = None;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            {
                let mut inner = self.lock();
                inner.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(batch) => {
                        apply_records(&mut self.shared.write(), &batch.0, entry.log_id.index)?
                    }
                    EntryPayload::Membership(m) => {
                        inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    }
                }
            }
            last = Some(entry.log_id.index);
            if let Some(r) = responder {
                r.send(Applied {
                    index: entry.log_id.index,
                });
            }
        }
        if let Some(index) = last {
            self.shared.applied.send_replace(index + 1);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: SnapshotData) -> Result<(), io::Error> {
        let image = snapshot::decode_image(&data)?;
        let mut inner = self.lock();
        *self.shared.write() = image;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        self.save(&mut inner, meta.clone(), data)?;
        drop(inner);
        if let Some(l) = meta.last_log_id {
            self.shared.applied.send_replace(l.index + 1);
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .lock()
            .current
            .clone()
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}
