//! Walks a request body against its schema without allocating, proving every length fits.
//!
//! `kafka-protocol`'s decoders call `Vec::with_capacity(n)` with `n` straight off the wire, so
//! an array length of i32::MAX would ask for hundreds of gigabytes. Before decoding, this walker
//! visits every field the schema names for the version: an array must hold as many elements as
//! it claims within the bytes received, strings must fit, and tagged fields the decoder knows
//! must be exactly as long as they say. Anything else is `Malformed` and the connection closes.
//!
//! Kafka's own limits apply on top (Kafka 4.4's decoders): no collection of more than
//! [`COLLECTION_ELEMENTS_MAX`] elements, no more than [`TAGGED_FIELDS_MAX`] tagged fields in one
//! section, and no string longer than [`STRING_BYTES_MAX`] (Kafka's generated parsers refuse
//! longer ones; every string Nurt stores has an `i16` length). The walk also counts every
//! collection element, so the broker can charge a request for what decoding it will cost
//! before it decodes.

use crate::schema::{self, Field, Struct, Ty};
use crate::ProtocolError;

/// Kafka 4.4: a collection of more elements is refused before anything is allocated.
pub const COLLECTION_ELEMENTS_MAX: usize = 1_000_000;
/// Kafka 4.4: a tagged-fields section with more fields is refused.
pub const TAGGED_FIELDS_MAX: u32 = 10_000;
/// The longest string Kafka accepts in a request (its length must fit an `i16`).
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;

/// A bounds-checked reader over a byte slice.
#[derive(Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Collection elements walked so far.
    elements: usize,
}

/// The walk hit the end of the data or an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short(pub &'static str);

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            elements: 0,
        }
    }

    /// Collection elements walked so far.
    pub fn elements(&self) -> usize {
        self.elements
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        if n > self.remaining() {
            return Err(Short(what));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, Short> {
        let b = self.take(2, "int16")?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, Short> {
        let b = self.take(4, "int32")?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint of at most 5 bytes.
    pub fn uvarint(&mut self) -> Result<u32, Short> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.take(1, "varint")?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Short("varint too long"))
    }

    /// A non-compact nullable string (i16 length, -1 for null).
    pub fn legacy_string(&mut self) -> Result<Option<&'a [u8]>, Short> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.take(len as usize, "string").map(Some)
    }

    /// Length of a string, bytes or array: compact (varint N+1, 0 = null) in flexible
    /// versions, else i16 (strings) or i32 (bytes, arrays). None for null.
    fn length(&mut self, flexible: bool, wide: bool) -> Result<Option<usize>, Short> {
        if flexible {
            let n = self.uvarint()?;
            return Ok(n.checked_sub(1).map(|n| n as usize));
        }
        let n = if wide { self.i32()? } else { i32::from(self.i16()?) };
        Ok(usize::try_from(n).ok())
    }

    /// Skips a tagged-fields section whose tags are all unknown.
    pub fn skip_tagged_fields(&mut self) -> Result<(), Short> {
        self.tagged_fields(&[], 0)
    }

    fn tagged_fields(&mut self, known: &[schema::Tag], version: i16) -> Result<(), Short> {
        let count = self.uvarint()?;
        if count > TAGGED_FIELDS_MAX {
            return Err(Short("more than 10000 tagged fields"));
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let body = self.take(size, "tagged field")?;
            if let Some(t) = known.iter().find(|t| t.tag == tag && version >= t.min_version) {
                // The decoder reads known tags in place, ignoring `size`: they must agree.
                let mut sub = Cursor::new(body);
                sub.ty(&t.ty, version, true)?;
                if sub.remaining() != 0 {
                    return Err(Short("tagged field size disagrees with its type"));
                }
            }
        }
        Ok(())
    }

    fn ty(&mut self, ty: &Ty, version: i16, flexible: bool) -> Result<(), Short> {
        match ty {
            Ty::Bool | Ty::I8 => self.take(1, "int8").map(drop),
            Ty::I16 => self.take(2, "int16").map(drop),
            Ty::I32 => self.take(4, "int32").map(drop),
            Ty::I64 => self.take(8, "int64").map(drop),
            Ty::Uuid => self.take(16, "uuid").map(drop),
            Ty::Str => {
                if let Some(len) = self.length(flexible, false)? {
                    if len > STRING_BYTES_MAX {
                        return Err(Short("string longer than 32767 bytes"));
                    }
                    self.take(len, "string")?;
                }
                Ok(())
            }
            Ty::Bytes => {
                if let Some(len) = self.length(flexible, true)? {
                    self.take(len, "bytes")?;
                }
                Ok(())
            }
            Ty::Array(inner) => {
                let Some(n) = self.collection(flexible)? else {
                    return Ok(());
                };
                for _ in 0..n {
                    self.structure(inner, version, flexible)?;
                }
                Ok(())
            }
            Ty::Struct(inner) => self.structure(inner, version, flexible),
            Ty::OptStruct(inner) => {
                // -1 null, 1 present: the only markers Kafka writes. Other bytes are refused
                // here, since Kafka's reader takes any negative marker for null but
                // kafka-protocol's decoder anything but 1 (the two would read different
                // layouts from the same bytes).
                match self.take(1, "nullable struct marker")?[0] as i8 {
                    -1 => Ok(()),
                    1 => self.structure(inner, version, flexible),
                    _ => Err(Short("nullable struct marker is neither -1 nor 1")),
                }
            }
            Ty::Values(inner) => {
                let Some(n) = self.collection(flexible)? else {
                    return Ok(());
                };
                for _ in 0..n {
                    self.ty(inner, version, flexible)?;
                }
                Ok(())
            }
        }
    }

    /// A collection's length, checked against the limits and counted.
    fn collection(&mut self, flexible: bool) -> Result<Option<usize>, Short> {
        let Some(n) = self.length(flexible, true)? else {
            return Ok(None);
        };
        if n > COLLECTION_ELEMENTS_MAX {
            return Err(Short("collection of more than 1000000 elements"));
        }
        // Cheap early exit; the element walk is the real proof.
        if n > self.remaining() {
            return Err(Short("array longer than the bytes left"));
        }
        self.elements += n;
        Ok(Some(n))
    }

    fn structure(&mut self, s: &Struct, version: i16, flexible: bool) -> Result<(), Short> {
        for Field { ty, min, max } in s.fields {
            if (*min..=*max).contains(&version) {
                self.ty(ty, version, flexible)?;
            }
        }
        if flexible {
            self.tagged_fields(s.tags, version)?;
        }
        Ok(())
    }
}

/// Walks `body` as request `api_key` at `version`; returns how many collection elements it
/// holds. Errors when the schema is unknown to the guard (the API is not served), the body
/// lies about a length, or it breaks one of Kafka's limits.
pub fn check(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Result<usize, ProtocolError> {
    walk(api_key, version, flexible, body).map(|w| w.elements)
}

/// What a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Collection elements in the body.
    pub elements: usize,
    /// Bytes the schema covers (any after them are ignored, as by the decoder).
    pub consumed_bytes: usize,
}

/// [`check`], also saying how many bytes the schema covered.
pub fn walk(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Result<Walked, ProtocolError> {
    let s = schema::request(api_key).ok_or(ProtocolError::UnsupportedVersion { api_key, version })?;
    let mut cur = Cursor::new(body);
    cur.structure(s, version, flexible)
        .map_err(|Short(what)| ProtocolError::Malformed(format!("api key {api_key} v{version}: {what}")))?;
    Ok(Walked {
        elements: cur.elements,
        consumed_bytes: cur.pos,
    })
}
