//! The listener's limits on real sockets: a client trickling its request head is cut off, a
//! body that does not come is answered 408, an idle kept-alive connection and a client that
//! stops reading are closed, one address cannot hold more than its share of sockets (upgraded
//! WebSockets included), and shutdown still lets answers finish.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::{get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use roomtape_web::{Limits, serve_with};

/// Bytes of `/big`: more than loopback's socket buffers hold, so a client that stops reading
/// leaves the server with bytes it cannot send.
const BIG: usize = 48 << 20;

fn tiny() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/echo", post(|b: Bytes| async move { b.len().to_string() }))
        .route(
            "/big",
            get(|| async {
                let piece = Bytes::from(vec![7u8; 64 << 10]);
                let pieces = futures_util::stream::iter(
                    (0..BIG / piece.len()).map(move |_| Ok::<_, std::io::Error>(piece.clone())),
                );
                (
                    [("content-length", BIG.to_string())],
                    Body::from_stream(pieces),
                )
            }),
        )
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s| async move {
                    while let Some(Ok(m)) = s.recv().await {
                        if let Message::Text(t) = m {
                            let _ = s.send(Message::Text(t)).await;
                        }
                    }
                })
            }),
        )
}

fn limits() -> Limits {
    Limits {
        header_timeout: None,
        body_timeout: None,
        idle_timeout: None,
        max_connections_per_ip: None,
    }
}

async fn start(limits: Limits) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(listener, tiny(), std::future::pending(), limits));
    addr
}

/// Reads an answer's head; returns its status and what came after the head.
async fn head(s: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..at]).to_string();
            let status = text[9..12].parse().unwrap();
            return (status, text, buf[at + 4..].to_vec());
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut piece))
            .await
            .expect("an answer within 10 s")
            .expect("an answer");
        assert!(n > 0, "closed without an answer: {buf:?}");
        buf.extend_from_slice(&piece[..n]);
    }
}

/// Reads until the server closes; `Some(bytes read)`, or `None` if it is still open after `d`.
async fn until_closed(s: &mut TcpStream, d: Duration) -> Option<usize> {
    let end = Instant::now() + d;
    let mut total = 0;
    let mut piece = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout_at(end.into(), s.read(&mut piece)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(total),
            Ok(Ok(n)) => total += n,
        }
    }
}

async fn get_ok(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (status, _, rest) = head(s).await;
    assert_eq!(status, 200);
    let mut body = rest;
    while body.len() < 5 {
        let mut b = [0u8; 16];
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0);
        body.extend_from_slice(&b[..n]);
    }
    assert_eq!(body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_request_head_is_cut_off() {
    let addr = start(Limits {
        header_timeout: Some(Duration::from_secs(1)),
        ..limits()
    })
    .await;
    // A head sent at once is fine.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut ok).await;

    let mut s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.split();
    let started = Instant::now();
    wr.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let trickle = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let closed = async {
        let mut b = [0u8; 1024];
        // The server answers nothing and closes.
        matches!(rd.read(&mut b).await, Ok(0) | Err(_))
    };
    let closed = tokio::select! {
        c = closed => c,
        () = trickle => true,
        () = tokio::time::sleep(Duration::from_secs(6)) => false,
    };
    let took = started.elapsed();
    assert!(closed, "a head trickled for 6 s was still being read");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "cut off after {took:?}, not after the 1 s header timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_come_is_answered_408_and_closed() {
    let addr = start(Limits {
        body_timeout: Some(Duration::from_secs(1)),
        ..limits()
    })
    .await;
    // A body sent at once is fine.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let (status, _, _) = head(&mut s).await;
    assert_eq!(status, 200);

    // Declared at 50 MB, 1 KB sent, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 50000000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'x'; 1024]).await.unwrap();
    let (status, h, _) = head(&mut s).await;
    assert_eq!(status, 408, "{h}");
    assert!(h.to_ascii_lowercase().contains("connection: close"), "{h}");
    assert!(until_closed(&mut s, Duration::from_secs(3)).await.is_some());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // A body trickled without pause is cut off at the deadline as well.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 50000\r\n\r\n")
        .await
        .unwrap();
    let (mut rd, mut wr) = s.split();
    let trickle = async {
        loop {
            if wr.write_all(&[b'y'; 10]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let answer = async {
        let mut b = vec![0u8; 4096];
        let n = rd.read(&mut b).await.unwrap_or(0);
        String::from_utf8_lossy(&b[..n]).to_string()
    };
    let answer = tokio::select! {
        a = answer => a,
        () = trickle => String::new(),
        () = tokio::time::sleep(Duration::from_secs(6)) => "still waiting after 6 s".into(),
    };
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_clients_that_stop_reading_are_closed() {
    let addr = start(Limits {
        idle_timeout: Some(Duration::from_secs(1)),
        ..limits()
    })
    .await;
    // Kept alive after an answer, then nothing: closed after the idle timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut s).await;
    // Within the timeout, the connection is reused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    get_ok(&mut s).await;
    let started = Instant::now();
    let closed = until_closed(&mut s, Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert_eq!(closed, Some(0), "an idle connection was kept for 5 s");
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // A connection that never sends a request is closed the same way.
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(until_closed(&mut s, Duration::from_secs(5)).await, Some(0));

    // A client that takes the head of a long answer and then reads nothing for longer than
    // the timeout is dropped: it gets what was in the sockets' buffers, not the whole answer.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (status, _, rest) = head(&mut s).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = rest.len()
        + until_closed(&mut s, Duration::from_secs(10))
            .await
            .expect("closed");
    assert!(
        got < BIG,
        "a client that stopped reading got the whole answer"
    );

    // One that keeps reading, slowly, gets all of it.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (_, _, rest) = head(&mut s).await;
    let mut got = rest.len();
    let mut b = vec![0u8; 1 << 20];
    while got < BIG {
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0, "cut off after {got} bytes");
        got += n;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let addr = start(Limits {
        max_connections_per_ip: Some(3),
        ..limits()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        get_ok(&mut s).await;
        open.push(s);
    }
    // An upgraded WebSocket still holds its socket, so it still counts.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::text("ping"))
        .await
        .unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "ping");

    // The fourth is closed at once, unanswered.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let started = Instant::now();
    assert_eq!(
        until_closed(&mut extra, Duration::from_secs(3)).await,
        Some(0),
        "the connection over the cap was answered or kept"
    );
    assert!(started.elapsed() < Duration::from_secs(1));

    // The ones within the cap still work; when one closes, a new one gets its slot.
    get_ok(&mut open[0]).await;
    ws.close(None).await.unwrap();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .is_ok()
        {
            let mut b = [0u8; 12];
            if s.read_exact(&mut b).await.is_ok() {
                assert_eq!(&b, b"HTTP/1.1 200");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_answers_finish_and_closes_idle_connections() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(serve_with(
        listener,
        tiny(),
        async {
            let _ = stopped.await;
        },
        Limits::default(),
    ));
    let mut idle = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut idle).await;
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let (status, _, rest) = head(&mut busy).await;
    assert_eq!(status, 200);

    stop.send(()).unwrap();
    assert_eq!(
        until_closed(&mut idle, Duration::from_secs(3)).await,
        Some(0),
        "an idle connection was kept through shutdown"
    );
    assert!(!served.is_finished(), "shutdown did not wait for an answer");
    let got = rest.len()
        + until_closed(&mut busy, Duration::from_secs(20))
            .await
            .expect("closed once answered");
    assert_eq!(got, BIG, "the answer in flight was cut short");
    tokio::time::timeout(Duration::from_secs(3), served)
        .await
        .expect("serve returns once every connection closed")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}
