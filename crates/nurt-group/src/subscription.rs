//! The consumer protocol's subscription blob (`ConsumerProtocolSubscription`), read only for
//! the topic names (OffsetDelete must know which topics a group still consumes).

/// Topic names in a subscription; empty if the blob is not one.
pub fn topics(blob: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = blob.get(2..).unwrap_or_default(); // version i16
    let Some(count) = rest.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])) else {
        return out;
    };
    rest = &rest[4..];
    for _ in 0..count.max(0) {
        let Some(len) = rest.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
            break;
        };
        let Some(name) = rest.get(2..2 + len.max(0) as usize) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        rest = &rest[2 + len.max(0) as usize..];
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_topic_names_and_survives_garbage() {
        let mut blob = vec![0, 1, 0, 0, 0, 2];
        for t in ["orders", "users"] {
            blob.extend_from_slice(&(t.len() as i16).to_be_bytes());
            blob.extend_from_slice(t.as_bytes());
        }
        blob.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(super::topics(&blob), vec!["orders", "users"]);
        assert!(super::topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 9]).is_empty());
    }
}
