//! A small big-endian encoding for metadata records (length-prefixed, bounds-checked).

use crate::MetadataError;

#[derive(Debug, Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes16(&mut self, v: &[u8; 16]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.i32(v.len() as i32);
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    pub fn opt_str(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            None => self.i32(-1),
            Some(s) => self.str(s),
        }
    }
    pub fn i32s(&mut self, v: &[i32]) -> &mut Self {
        self.i32(v.len() as i32);
        for x in v {
            self.i32(*x);
        }
        self
    }
}

#[derive(Debug)]
pub(crate) struct Reader<'a>(pub &'a [u8]);

const SHORT: MetadataError = MetadataError::CorruptRecord("truncated");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetadataError> {
        if n > self.0.len() {
            return Err(SHORT);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, MetadataError> {
        Ok(self.take(1)?[0])
    }
    pub fn i32(&mut self) -> Result<i32, MetadataError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i64(&mut self) -> Result<i64, MetadataError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
    pub fn bytes16(&mut self) -> Result<[u8; 16], MetadataError> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(a)
    }
    pub fn opt_str(&mut self) -> Result<Option<String>, MetadataError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(MetadataError::CorruptRecord("negative string length"));
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| MetadataError::CorruptRecord("string is not UTF-8"))
    }
    pub fn str(&mut self) -> Result<String, MetadataError> {
        self.opt_str()?.ok_or(MetadataError::CorruptRecord("null string"))
    }
    pub fn i32s(&mut self) -> Result<Vec<i32>, MetadataError> {
        let n = self.count(4)?;
        (0..n).map(|_| self.i32()).collect()
    }
    pub fn bool(&mut self) -> Result<bool, MetadataError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(MetadataError::CorruptRecord("bool is neither 0 nor 1")),
        }
    }
    /// A count of elements each at least `min_bytes` long, checked against the bytes left
    /// before anything is allocated for them.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, MetadataError> {
        let n = self.i32()?;
        if n < 0 || n as usize > self.0.len() / min_bytes.max(1) {
            return Err(SHORT);
        }
        Ok(n as usize)
    }
}
