//! Broker-level tests that need hooks a real client cannot reach (an injected panic).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::{server, Broker, BrokerConfig};

/// A request from this client id makes its handler panic (test builds only).
pub const PANIC_CLIENT_ID: &str = "nurt-test-panic";

/// ApiVersions v0 from `client_id`.
fn api_versions(client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn answer(addr: std::net::SocketAddr, client_id: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&api_versions(client_id))?;
    let mut out = Vec::new();
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {
            out.resize(i32::from_be_bytes(len) as usize, 0);
            s.read_exact(&mut out)?;
            Ok(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(out),
        Err(e) => Err(e),
    }
}

#[test]
fn a_panicking_handler_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (addr, stop, done) = rt.block_on(async {
        let listeners = server::bind("127.0.0.1:0").await.unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let broker = Broker::open(BrokerConfig::new(dir.path().to_path_buf(), addr.to_string(), None)).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(server::serve(broker, listeners, async move {
            let _ = stopped.await;
        }));
        (addr, stop, done)
    });
    assert!(!answer(addr, "well-behaved").unwrap().is_empty());
    assert!(
        answer(addr, PANIC_CLIENT_ID).unwrap().is_empty(),
        "the panicking request's connection is closed without an answer"
    );
    // Everyone else is still served, repeatedly.
    for _ in 0..3 {
        assert_eq!(&answer(addr, "after-the-panic").unwrap()[..4], &7i32.to_be_bytes());
    }
    stop.send(()).unwrap();
    rt.block_on(done).unwrap().unwrap();
}
