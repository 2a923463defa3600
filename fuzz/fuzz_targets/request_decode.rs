//! Any bytes as a request frame (after the length prefix): a request or an error, never a
//! panic, never an allocation beyond what the bytes can hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = bytes::Bytes::copy_from_slice(data);
    if let Ok(request) = nurt_protocol::decode_request(&frame) {
        // A decoded request's header must agree with the bytes it came from.
        let (key, version, correlation) = nurt_protocol::header::peek(data).expect("decoded requests have a header");
        assert_eq!((request.header.api_key, request.header.api_version, request.header.correlation_id), (key, version, correlation));
    }
    let _ = nurt_protocol::frame::check_length([data.first().copied().unwrap_or(0), 0, 0, 0], 1 << 20);
});
