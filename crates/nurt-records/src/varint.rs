//! Zig-zag varints as used inside Kafka records.

use crate::RecordsError;

/// Reads a zig-zag encoded varint (at most 5 bytes) from the front of `buf`.
pub fn read_varint(buf: &mut &[u8]) -> Result<i32, RecordsError> {
    let raw = read_unsigned(buf, 5)?;
    let raw = u32::try_from(raw).map_err(|_| RecordsError::Invalid("varint overflows 32 bits"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// Reads a zig-zag encoded varlong (at most 10 bytes) from the front of `buf`.
pub fn read_varlong(buf: &mut &[u8]) -> Result<i64, RecordsError> {
    let raw = read_unsigned(buf, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(buf: &mut &[u8], max_bytes: usize) -> Result<u64, RecordsError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let (&byte, rest) = buf.split_first().ok_or(RecordsError::Truncated("varint"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordsError::Invalid("varint longer than allowed"))
}

/// Appends `value` zig-zag encoded.
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_varlong(out, i64::from(value));
}

/// Appends `value` zig-zag encoded as a varlong.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Bytes `value` takes zig-zag encoded.
pub fn varint_len(value: i64) -> usize {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while raw >= 0x80 {
        raw >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut slice = out.as_slice();
            prop_assert_eq!(read_varlong(&mut slice).unwrap(), v);
            prop_assert!(slice.is_empty());
        }

        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            let mut slice = out.as_slice();
            prop_assert_eq!(read_varint(&mut slice).unwrap(), v);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let mut slice = bytes.as_slice();
            let _ = read_varlong(&mut slice);
        }
    }
}
