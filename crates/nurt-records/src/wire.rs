//! Kafka's primitive encodings for the keys and values of internal topics' records
//! (`__consumer_offsets`, `__transaction_state`): big-endian integers, `i16`-length strings,
//! `i32`-length bytes, compact (unsigned varint length + 1) strings and arrays, and tagged
//! fields.
//!
//! The `put_*` functions append to a buffer; [`Reader`] reads them back from untrusted bytes.
//! Every count it reads is checked against the bytes left before anything is allocated for it,
//! so a corrupt length is an error, never a huge allocation.

/// Why bytes could not be read as the encoding asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed record field: {0}")]
pub struct WireError(pub &'static str);

/// Appends `s` with an `i16` length.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    // Ids and names are refused above 32,767 bytes before they reach a record (the request guard).
    debug_assert!(s.len() <= i16::MAX as usize, "a string over i16::MAX");
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends `s` with an `i16` length, -1 for `None`.
pub fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

/// Appends `b` with an `i32` length.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Appends `n` as an unsigned varint.
pub fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `s` as a compact string (its length + 1 as an unsigned varint).
pub fn put_compact_str(out: &mut Vec<u8>, s: &str) {
    put_uvarint(out, s.len() as u64 + 1);
    out.extend_from_slice(s.as_bytes());
}

/// Appends `s` as a compact nullable string: `None` is a length of 0.
pub fn put_compact_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(out, s),
        None => out.push(0),
    }
}

/// Appends one tagged field: its tag, its size, its data (the count of tagged fields before
/// them is the caller's).
pub fn put_tag(out: &mut Vec<u8>, tag: u64, data: &[u8]) {
    put_uvarint(out, tag);
    put_uvarint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError("truncated"));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn i8(&mut self) -> Result<i8, WireError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, WireError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An unsigned varint of at most 10 bytes.
    pub fn uvarint(&mut self) -> Result<u64, WireError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(WireError("varint too long"))
    }

    fn utf8(bytes: &[u8]) -> Result<String, WireError> {
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError("string is not UTF-8"))
    }

    /// An `i16`-length string; a negative length is null.
    pub fn opt_str(&mut self) -> Result<Option<String>, WireError> {
        match usize::try_from(self.i16()?) {
            Ok(n) => Self::utf8(self.take(n)?).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// An `i16`-length string that must not be null.
    pub fn str(&mut self) -> Result<String, WireError> {
        self.opt_str()?.ok_or(WireError("null string"))
    }

    /// A compact nullable string (length + 1 as an unsigned varint, 0 for null).
    pub fn compact_opt_str(&mut self) -> Result<Option<String>, WireError> {
        match self.uvarint()? {
            0 => Ok(None),
            stored => {
                let n = usize::try_from(stored - 1).map_err(|_| WireError("string length"))?;
                Self::utf8(self.take(n)?).map(Some)
            }
        }
    }

    /// A compact string that must not be null.
    pub fn compact_str(&mut self) -> Result<String, WireError> {
        self.compact_opt_str()?.ok_or(WireError("null string"))
    }

    /// `i32`-length bytes; a negative length is null.
    pub fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        match usize::try_from(self.i32()?) {
            Ok(n) => self.take(n).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A compact array length (`None` for null), refused when that many elements of at least
    /// `min_size` bytes each could not fit in what is left.
    pub fn compact_len(&mut self, min_size: usize) -> Result<Option<usize>, WireError> {
        match self.uvarint()? {
            0 => Ok(None),
            n => self.bounded(n - 1, min_size).map(Some),
        }
    }

    /// An `i32` array length (`None` for -1), bounded like [`Reader::compact_len`].
    pub fn len_i32(&mut self, min_size: usize) -> Result<Option<usize>, WireError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(WireError("negative length")),
            n => self.bounded(n as u64, min_size).map(Some),
        }
    }

    fn bounded(&self, n: u64, min_size: usize) -> Result<usize, WireError> {
        let fits = (self.rest.len() / min_size.max(1)) as u64;
        if n > fits {
            return Err(WireError("length exceeds the record"));
        }
        Ok(n as usize)
    }

    /// One tagged field: its tag and its data.
    pub fn tagged_field(&mut self) -> Result<(u64, &'a [u8]), WireError> {
        let tag = self.uvarint()?;
        let size = usize::try_from(self.uvarint()?).map_err(|_| WireError("tagged field size"))?;
        Ok((tag, self.take(size)?))
    }

    /// Skips a block of tagged fields (their count, then each field).
    pub fn skip_tagged_fields(&mut self) -> Result<(), WireError> {
        for _ in 0..self.uvarint()? {
            self.tagged_field()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_written_reads_back() {
        let mut out = Vec::new();
        put_str(&mut out, "ab");
        put_opt_str(&mut out, None);
        put_opt_str(&mut out, Some(""));
        put_bytes(&mut out, &[1, 2, 3]);
        put_uvarint(&mut out, 300);
        put_compact_str(&mut out, "xyz");
        put_compact_opt_str(&mut out, None);
        out.extend_from_slice(&[1]); // one tagged field
        put_tag(&mut out, 7, &[9, 9]);
        out.extend_from_slice(&(-5i64).to_be_bytes());
        let mut r = Reader::new(&out);
        assert_eq!(r.str().unwrap(), "ab");
        assert_eq!(r.opt_str().unwrap(), None);
        assert_eq!(r.opt_str().unwrap().as_deref(), Some(""));
        assert_eq!(r.opt_bytes().unwrap(), Some(&[1u8, 2, 3][..]));
        assert_eq!(r.uvarint().unwrap(), 300);
        assert_eq!(r.compact_str().unwrap(), "xyz");
        assert_eq!(r.compact_opt_str().unwrap(), None);
        assert_eq!(r.uvarint().unwrap(), 1);
        assert_eq!(r.tagged_field().unwrap(), (7, &[9u8, 9][..]));
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.i8(), Err(WireError("truncated")));
    }

    #[test]
    fn lengths_past_the_end_are_refused_before_allocating() {
        // 2^62 elements in a few bytes.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0];
        assert_eq!(
            Reader::new(&huge).compact_len(1),
            Err(WireError("length exceeds the record"))
        );
        let mut r = Reader::new(&[0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(r.len_i32(4), Err(WireError("length exceeds the record")));
        assert_eq!(Reader::new(&[0, 0, 0, 1, 0, 0, 0, 0]).len_i32(4), Ok(Some(1)));
        assert_eq!(Reader::new(&[0xff; 4]).len_i32(4), Ok(None));
        assert_eq!(Reader::new(&[0, 9, b'a']).str(), Err(WireError("truncated")));
        assert_eq!(Reader::new(&[0xff; 11]).uvarint(), Err(WireError("varint too long")));
        assert_eq!(Reader::new(&[0xff, 0xff]).str(), Err(WireError("null string")));
    }
}
