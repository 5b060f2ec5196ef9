//! Serving a long mix to slow clients on real sockets: the server's memory must not grow with
//! the file. A test binary of its own, so that no other test's allocations show in the
//! process's resident size while it is measured.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use roomtape_core::{
    Catalog, Config, LocalStore, Recording, RecordingId, RecordingSource, RecordingState,
    Timestamp, Visibility, layout,
};
use roomtape_search::SearchIndex;
use roomtape_web::{AppState, app};

/// The mix: 32 MiB, about a 90-minute room at the mix bit rate.
const SIZE: u64 = 32 << 20;
const CLIENTS: usize = 8;

/// The mix's byte at `i`: not periodic, so a piece served from the wrong offset shows.
fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// Sends a GET and reads the answer's head; returns the status, the head and the body bytes
/// that came with it.
async fn request(s: &mut TcpStream, path: &str, range: Option<&str>) -> (u16, String, Vec<u8>) {
    let range = range.map_or(String::new(), |r| format!("Range: {r}\r\n"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{range}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut piece = [0u8; 16 << 10];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).to_string();
            return (head[9..12].parse().unwrap(), head, buf[at + 4..].to_vec());
        }
        let n = s.read(&mut piece).await.unwrap();
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&piece[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_of_a_long_mix_do_not_make_the_server_hold_it() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&dir.path().join("c.sqlite")).await.unwrap();
    let store = Arc::new(LocalStore::new(dir.path().join("archives")).unwrap());
    let id = RecordingId::new();
    let rec = Recording {
        id,
        room_id: None,
        title: "A long evening".into(),
        source: RecordingSource::Import,
        state: RecordingState::Recorded,
        recovered: false,
        error: None,
        started_at: Timestamp::now(),
        ended_at: Some(Timestamp::now()),
        duration_ms: Some(5_400_000),
        language: "en".into(),
        visibility: Visibility::Public,
        owner_id: None,
        description: String::new(),
    };
    catalog.create_recording(&rec, &[]).await.unwrap();
    // Written a piece at a time, so the test itself never holds the file either.
    let path = store.root().join(layout::file_key(id, "mix.opus"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..SIZE {
        f.write_all(&[byte_at(i)]).unwrap();
    }
    f.into_inner().unwrap().sync_all().unwrap();

    let config = Config::default();
    let live = roomtape_web::live::Live::new(
        catalog.clone(),
        store.clone(),
        Arc::new(config.clone()),
        None,
    );
    let state = AppState::new(
        catalog,
        store,
        Arc::new(SearchIndex::in_memory().unwrap()),
        config,
        live,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(roomtape_web::serve(
        listener,
        app(state),
        std::future::pending(),
    ));
    let mix = format!("/r/{id}/mix.opus");

    // Once through, so that pools and caches exist before the baseline is taken.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (status, head, _) = request(&mut s, &mix, Some("bytes=0-99")).await;
    assert_eq!(status, 206, "{head}");
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = resident_bytes();

    // Slow clients: each asks for the whole mix (no Range, or `bytes=0-`), takes the head and
    // what came with it, then reads nothing for a while.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let range = (i % 2 == 1).then_some("bytes=0-");
        let (status, head, first) = request(&mut s, &mix, range).await;
        assert_eq!(status, if range.is_some() { 206 } else { 200 }, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {SIZE}")),
            "the whole file is answered, not a piece: {head}"
        );
        clients.push((s, first));
    }
    let mut most = 0;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        most = most.max(resident_bytes().saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        most < SIZE,
        "{CLIENTS} slow clients of a {} MiB file grew the server by {} MiB",
        SIZE >> 20,
        most >> 20
    );

    // Then every client reads the rest, and gets every byte right.
    let mut reads = Vec::new();
    for (mut s, first) in clients {
        reads.push(tokio::spawn(async move {
            let mut at = 0u64;
            for b in first {
                assert_eq!(b, byte_at(at), "byte {at}");
                at += 1;
            }
            let mut piece = vec![0u8; 256 << 10];
            while at < SIZE {
                let n = s.read(&mut piece).await.unwrap();
                assert!(n > 0, "cut off at {at}");
                for &b in &piece[..n] {
                    assert_eq!(b, byte_at(at), "byte {at}");
                    at += 1;
                }
            }
            assert_eq!(at, SIZE);
        }));
    }
    for r in reads {
        r.await.unwrap();
    }
}
