//! The Raft log of the metadata quorum, stored as an ordinary `nurt-log` log in
//! `__cluster_metadata-0`: Raft index = log offset, one record batch per entry (its value the
//! entry, postcard-encoded; its partition leader epoch the entry's term), so the log's own
//! recovery, truncation and fsync paths serve Raft too. The entries are mirrored in memory
//! for reads (the log is kept short by snapshots).
//!
//! Durability (openraft's contract): an entry is readable when `append` returns and
//! acknowledged as flushed only after the log's fsync; a vote is written atomically (temp file,
//! fsync, rename, directory fsync) before `save_vote` returns. The committed index is a hint
//! (written without fsync): if a power cut loses it, fewer entries are re-applied at start
//! and the leader's next commit brings the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use nurt_log::storage::write_atomic;
use nurt_log::{Log, LogConfig, Storage};
use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;
use nurt_records::{BatchBuilder, Compression};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{Entry, LogId, Vote, C};

const VOTE_FILE: &str = "quorum-state";
const PURGED_FILE: &str = "quorum-purged";
const COMMITTED_FILE: &str = "quorum-committed";
/// No decoded entry batch may exceed this (metadata entries are small).
const ENTRY_BATCH_BYTES_MAX: usize = 64 << 20;

fn invalid(what: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn to_io(e: nurt_log::LogError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Encodes a value of openraft's (or ours) for the log and the wire.
pub fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| invalid(format!("encoding: {e}")))
}

/// Decodes what [`encode`] wrote; anything else is an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| invalid(format!("decoding: {e}")))
}

struct Inner {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    log: Log,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// The log store; clones share it (every reader sees every accepted entry at once).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

fn read_file<T: DeserializeOwned>(storage: &dyn Storage, path: &Path) -> io::Result<Option<T>> {
    match storage.read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl LogStore {
    /// Opens (creating) the Raft log in `dir` and loads its entries, vote and hints.
    pub fn open(storage: &Arc<dyn Storage>, dir: &Path, clean: bool, now_ms: i64) -> io::Result<Self> {
        let config = LogConfig {
            segment_bytes: 64 << 20,
            ..LogConfig::default()
        };
        let log = Log::open(storage, dir, config, clean, now_ms).map_err(to_io)?;
        let mut log = log;
        log.set_high_watermark(log.log_end_offset());
        let mut entries = BTreeMap::new();
        let mut offset = log.log_start_offset();
        while let Some(slice) = log.read_for_follower(offset, 1 << 20).map_err(to_io)? {
            let bytes = slice.read_to_vec()?;
            for b in Batches::new(&bytes) {
                let (_, raw) = b.map_err(invalid)?;
                let (header, records) = decode_batch(raw, ENTRY_BATCH_BYTES_MAX).map_err(invalid)?;
                for r in records {
                    let entry: Entry = decode(r.value.as_deref().unwrap_or_default())?;
                    if entry.index() != r.offset as u64 {
                        return Err(invalid(format!(
                            "metadata log entry {} stored at offset {}",
                            entry.index(),
                            r.offset
                        )));
                    }
                    entries.insert(entry.index(), entry);
                }
                offset = header.last_offset() + 1;
            }
        }
        let fs = &**storage;
        let last_purged: Option<LogId> = read_file(fs, &dir.join(PURGED_FILE))?;
        // A crash between writing the purge point and deleting below it leaves such entries.
        entries.retain(|&i, _| last_purged.is_none_or(|p| i > p.index));
        let inner = Inner {
            vote: read_file(fs, &dir.join(VOTE_FILE))?,
            last_purged,
            // Written as an `Option` (openraft may save "nothing committed").
            committed: read_file::<Option<LogId>>(fs, &dir.join(COMMITTED_FILE))
                .unwrap_or(None)
                .flatten(),
            storage: Arc::clone(storage),
            dir: dir.to_path_buf(),
            log,
            entries,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Flushes and checkpoints the log for a clean shutdown.
    pub fn close(&self) -> io::Result<()> {
        self.lock().log.close().map_err(to_io)
    }

    /// The index of the last entry, if any.
    pub fn last_index(&self) -> Option<u64> {
        let inner = self.lock();
        inner
            .entries
            .keys()
            .next_back()
            .copied()
            .or(inner.last_purged.map(|l| l.index))
    }
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let inner = self.lock();
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id())
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let path = inner.dir.join(VOTE_FILE);
        write_atomic(&*inner.storage, &path, &encode(vote)?)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        inner.committed = committed;
        // A hint (see the module docs): written without fsync, and a failure to write it
        // (a full disk) costs only re-applying a few entries at the next start.
        let path = inner.dir.join(COMMITTED_FILE);
        let tmp = path.with_extension("tmp");
        let written = encode(&committed).and_then(|bytes| {
            let file = inner.storage.open(&tmp, true, true)?;
            file.append(&[&bytes])?;
            drop(file);
            inner.storage.rename(&tmp, &path)
        });
        if let Err(e) = written {
            tracing::warn!("cannot record the metadata log's commit point (a hint): {e}");
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = {
            let mut inner = self.lock();
            let mut result = Ok(());
            for entry in entries {
                let now = crate::now_ms();
                let index = entry.index() as i64;
                if inner.log.log_end_offset() != index {
                    // After a snapshot far ahead of this log, the log starts over there.
                    if inner.entries.is_empty() && index > inner.log.log_end_offset() {
                        inner.log.truncate_fully_and_start_at(index).map_err(to_io)?;
                    } else {
                        return Err(invalid(format!(
                            "entry {index} does not follow the metadata log's end {}",
                            inner.log.log_end_offset()
                        )));
                    }
                }
                let mut builder = BatchBuilder::new(Compression::None, now);
                builder.push(now, None, Some(&encode(&entry)?), &[]);
                let batch = builder.build().map_err(invalid)?;
                let term = entry.log_id().committed_leader_id().term as i32;
                inner.log.append(&batch, term, None, now).map_err(to_io)?;
                // Raft's log is this log's only replica: commitment is Raft's business.
                let end = inner.log.log_end_offset();
                inner.log.set_high_watermark(end);
                inner.entries.insert(entry.index(), entry);
            }
            if let Err(e) = inner.log.flush() {
                result = Err(to_io(e));
            }
            result
        };
        callback.io_completed(result);
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let from = last_log_id.map_or(0, |l| l.index + 1);
        inner.log.truncate_to(from as i64).map_err(to_io)?;
        inner.entries.split_off(&from);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let path = inner.dir.join(PURGED_FILE);
        // The purge point first (durably): a crash in between leaves entries below it, which
        // are ignored, never a purge point below missing entries.
        write_atomic(&*inner.storage, &path, &encode(&log_id)?)?;
        inner.last_purged = Some(log_id);
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        let upto = (log_id.index + 1) as i64;
        if upto > inner.log.log_end_offset() {
            inner.log.truncate_fully_and_start_at(upto).map_err(to_io)?;
        } else {
            inner.log.delete_records_before(upto).map_err(to_io)?;
        }
        Ok(())
    }
}
