//! One-time migration of a data directory written by the single-node Nurt that came before
//! the metadata quorum: its metadata log (`__cluster_metadata-0`, records without versions)
//! is set aside as `__cluster_metadata-0.legacy`, the quorum starts afresh, and once this node
//! leads it the old records are written again, in order, as one entry. Replaying them gives the
//! same topics, partitions, configs and producer ids; the old directory is removed after.
//! A crash at any point resumes the migration at the next start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nurt_group::GroupRecord;
use nurt_log::{Log, LogConfig, Storage};
use nurt_metadata::MetadataRecord;
use nurt_records::batch::Batches;
use nurt_records::record::decode_batch;

use crate::BrokerError;

/// The quorum writes this file before any entry: a log directory without it is the old format.
const QUORUM_STATE: &str = "quorum-state";
const BATCH_BYTES_MAX: usize = 16 << 20;

/// Where the old log is kept until its records are in the quorum.
pub fn legacy_dir(metadata_dir: &Path) -> PathBuf {
    metadata_dir.with_file_name(format!(
        "{}.legacy",
        metadata_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ))
}

fn has_records(storage: &Arc<dyn Storage>, dir: &Path) -> Result<bool, BrokerError> {
    let log = Log::open(storage, dir, LogConfig::default(), false, 0)?;
    Ok(log.log_end_offset() > log.log_start_offset())
}

/// Sets a metadata log of the old format aside (once); returns its records when there are
/// some to migrate (also after a crash that left them set aside).
pub fn take_legacy(
    storage: &Arc<dyn Storage>,
    metadata_dir: &Path,
) -> Result<Option<Vec<MetadataRecord>>, BrokerError> {
    let legacy = legacy_dir(metadata_dir);
    let old_format = storage.is_dir(metadata_dir)
        && !storage.exists(&metadata_dir.join(QUORUM_STATE))
        && has_records(storage, metadata_dir)?;
    if old_format {
        if storage.is_dir(&legacy) {
            return Err(BrokerError::CorruptMetadata(format!(
                "both {} and {} hold an old metadata log; move one away",
                metadata_dir.display(),
                legacy.display()
            )));
        }
        storage
            .rename(metadata_dir, &legacy)
            .map_err(|e| BrokerError::Io(legacy.clone(), e))?;
        let parent = nurt_log::storage::parent_of(metadata_dir);
        storage
            .sync_dir(parent)
            .map_err(|e| BrokerError::Io(parent.to_path_buf(), e))?;
        tracing::info!(
            "found a metadata log of the single-node format: moved it to {} to migrate it into the metadata quorum",
            legacy.display()
        );
    }
    if !storage.is_dir(&legacy) {
        return Ok(None);
    }
    let log = Log::open(storage, &legacy, LogConfig::default(), false, 0)?;
    let corrupt = |e: &dyn std::fmt::Display| BrokerError::CorruptMetadata(format!("{}: {e}", legacy.display()));
    let mut records = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read_for_follower(offset, 1 << 20)? {
        let bytes = slice.read_to_vec().map_err(|e| BrokerError::Io(legacy.clone(), e))?;
        for b in Batches::new(&bytes) {
            let (_, raw) = b.map_err(|e| corrupt(&e))?;
            let (header, decoded) = decode_batch(raw, BATCH_BYTES_MAX).map_err(|e| corrupt(&e))?;
            for r in decoded {
                let value = r.value.ok_or_else(|| corrupt(&"record without value"))?;
                records.push(MetadataRecord::decode_legacy(&value).map_err(|e| corrupt(&e))?);
            }
            offset = header.last_offset() + 1;
        }
    }
    Ok(Some(records))
}

/// Removes the old log once its records are in the quorum.
pub fn finish(storage: &Arc<dyn Storage>, metadata_dir: &Path, migrated: usize) -> Result<(), BrokerError> {
    let legacy = legacy_dir(metadata_dir);
    storage
        .remove_dir_all(&legacy)
        .map_err(|e| BrokerError::Io(legacy.clone(), e))?;
    let parent = nurt_log::storage::parent_of(metadata_dir);
    storage
        .sync_dir(parent)
        .map_err(|e| BrokerError::Io(parent.to_path_buf(), e))?;
    tracing::info!("migrated {migrated} metadata record(s) of the single-node format into the metadata quorum");
    Ok(())
}

/// The offsets log of the single-node format (`__consumer_offsets-0`, one local log of group
/// records without a `partition.metadata` claim) while its records move into the partitions
/// of the `__consumer_offsets` topic.
const LEGACY_OFFSETS: &str = "__consumer_offsets-0.single-node";

/// Sets the single-node offsets log aside (once, durably, before the topic's own partition 0
/// may take its name) and returns its records; also after a crash that left them set aside.
pub fn take_legacy_offsets(
    storage: &Arc<dyn Storage>,
    data_dir: &Path,
) -> Result<Option<Vec<GroupRecord>>, BrokerError> {
    let old = data_dir.join("__consumer_offsets-0");
    let legacy = data_dir.join(LEGACY_OFFSETS);
    if storage.is_dir(&old) && !storage.exists(&old.join(nurt_log::data_dir::PARTITION_METADATA)) {
        storage
            .rename(&old, &legacy)
            .map_err(|e| BrokerError::Io(legacy.clone(), e))?;
        storage
            .sync_dir(data_dir)
            .map_err(|e| BrokerError::Io(data_dir.to_path_buf(), e))?;
        tracing::info!(
            "found an offsets log of the single-node format: moved it to {} to migrate it into {}",
            legacy.display(),
            crate::group_service::OFFSETS_TOPIC
        );
    }
    if !storage.is_dir(&legacy) {
        return Ok(None);
    }
    let mut log = Log::open(storage, &legacy, LogConfig::default(), false, 0)?;
    log.set_high_watermark(log.log_end_offset());
    let corrupt = |e: &dyn std::fmt::Display| BrokerError::CorruptMetadata(format!("{}: {e}", legacy.display()));
    let mut records = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read_for_follower(offset, 1 << 20)? {
        let bytes = slice.read_to_vec().map_err(|e| BrokerError::Io(legacy.clone(), e))?;
        for b in Batches::new(&bytes) {
            let (_, raw) = b.map_err(|e| corrupt(&e))?;
            let (header, decoded) = decode_batch(raw, BATCH_BYTES_MAX).map_err(|e| corrupt(&e))?;
            for r in decoded {
                let record = GroupRecord::decode(r.key.as_deref().unwrap_or_default(), r.value.as_deref())
                    .map_err(|e| corrupt(&e))?;
                records.push(record);
            }
            offset = header.last_offset() + 1;
        }
    }
    Ok(Some(records))
}

/// Removes the single-node offsets log once its records are in the topic.
pub fn finish_offsets(storage: &Arc<dyn Storage>, data_dir: &Path) -> Result<(), BrokerError> {
    let legacy = data_dir.join(LEGACY_OFFSETS);
    storage
        .remove_dir_all(&legacy)
        .map_err(|e| BrokerError::Io(legacy.clone(), e))?;
    storage
        .sync_dir(data_dir)
        .map_err(|e| BrokerError::Io(data_dir.to_path_buf(), e))?;
    tracing::info!(
        "migrated the single-node offsets log into {}",
        crate::group_service::OFFSETS_TOPIC
    );
    Ok(())
}
