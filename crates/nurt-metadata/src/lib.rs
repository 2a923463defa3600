//! Cluster metadata: topics, partitions, configs and producer id blocks, kept as an ordered
//! stream of [`MetadataRecord`]s and replayed into a [`MetadataImage`].
//!
//! The controller ([`controller`]) never mutates the image: it validates a request against the
//! image and returns the records to append. The broker persists them (in the
//! `__cluster_metadata` log) and then applies them, so a restart, and later a follower, replays
//! exactly the same records through [`MetadataImage::apply`]. Sans-IO: no files, no clock.

pub mod config;
pub mod controller;
pub mod error;
pub mod image;
pub mod record;
mod wire;

pub use config::{ConfigSource, TopicConfigs};
pub use error::MetadataError;
pub use image::{BrokerInfo, MetadataImage, PartitionInfo, TopicInfo};
pub use record::{BrokerRegistration, ConfigResourceType, Endpoint, MetadataRecord, PartitionRecord, TopicId};
