//! The metadata snapshot format: the image as metadata records, each in its own versioned
//! encoding, behind a header that names the format.
//!
//! ```text
//! image:   "NURTIMG" u8(format version = 1) u32(count) [u32(len) record]*
//! file:    "NURTSNP" u8(format version = 1) u32(meta len) meta(postcard) image
//! ```
//! A format version newer than this binary's is refused with a clear error.

use std::io;

use nurt_metadata::{MetadataImage, MetadataRecord};

use super::log_store::{decode, encode};
use super::types::{SnapshotData, SnapshotMeta};

const IMAGE_MAGIC: &[u8; 7] = b"NURTIMG";
const FILE_MAGIC: &[u8; 7] = b"NURTSNP";
const FORMAT_VERSION: u8 = 1;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads a `u32` length and the bytes it covers.
fn take<'a>(bytes: &mut &'a [u8], what: &'static str) -> io::Result<&'a [u8]> {
    if bytes.len() < 4 {
        return Err(invalid(format!("snapshot: truncated {what} length")));
    }
    let n = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let rest = &bytes[4..];
    if n > rest.len() {
        return Err(invalid(format!("snapshot: truncated {what}")));
    }
    let (head, tail) = rest.split_at(n);
    *bytes = tail;
    Ok(head)
}

fn check_header(bytes: &mut &[u8], magic: &[u8; 7]) -> io::Result<()> {
    if bytes.len() < 8 || &bytes[..7] != magic {
        return Err(invalid("not a Nurt metadata snapshot"));
    }
    if bytes[7] > FORMAT_VERSION {
        return Err(invalid(format!(
            "metadata snapshot format {} is newer than this binary reads ({FORMAT_VERSION}); upgrade Nurt",
            bytes[7]
        )));
    }
    *bytes = &bytes[8..];
    Ok(())
}

/// The image as snapshot bytes.
pub fn encode_image(image: &MetadataImage) -> SnapshotData {
    let records = image.to_records();
    let mut out = IMAGE_MAGIC.to_vec();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(records.len() as u32).to_be_bytes());
    for r in records {
        let bytes = r.encode();
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// The image the snapshot bytes hold.
pub fn decode_image(mut bytes: &[u8]) -> io::Result<MetadataImage> {
    check_header(&mut bytes, IMAGE_MAGIC)?;
    let count = u32::from_be_bytes(take_4(&mut bytes)?) as usize;
    let mut image = MetadataImage::default();
    for _ in 0..count {
        let record = MetadataRecord::decode(take(&mut bytes, "record")?).map_err(|e| invalid(e.to_string()))?;
        image.apply(&record).map_err(|e| invalid(e.to_string()))?;
    }
    if !bytes.is_empty() {
        return Err(invalid("snapshot: trailing bytes"));
    }
    Ok(image)
}

fn take_4(bytes: &mut &[u8]) -> io::Result<[u8; 4]> {
    if bytes.len() < 4 {
        return Err(invalid("snapshot: truncated count"));
    }
    let out = [bytes[0], bytes[1], bytes[2], bytes[3]];
    *bytes = &bytes[4..];
    Ok(out)
}

/// A snapshot file: its meta and data.
pub fn encode_file(meta: &SnapshotMeta, data: &SnapshotData) -> io::Result<Vec<u8>> {
    let meta = encode(meta)?;
    let mut out = FILE_MAGIC.to_vec();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(data);
    Ok(out)
}

/// The meta and data of a snapshot file; the data's image is checked too.
pub fn decode_file(mut bytes: &[u8]) -> io::Result<(SnapshotMeta, SnapshotData)> {
    check_header(&mut bytes, FILE_MAGIC)?;
    let meta = decode(take(&mut bytes, "meta")?)?;
    decode_image(bytes)?;
    Ok((meta, bytes.to_vec()))
}
