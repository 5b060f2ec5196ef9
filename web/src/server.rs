//! The HTTP listener: an accept loop of hyper HTTP/1 connections (with upgrades, for the live
//! rooms' WebSockets) and the limits that keep one slow or greedy client from holding the
//! service: a client has `header_timeout` to finish a request head once it has begun one,
//! `body_timeout` to send a body, `idle_timeout` whenever the server waits on it (for a next
//! request, or for it to read more of an answer), and one address holds at most
//! `max_connections_per_ip` sockets at once. While a handler works, no connection timer runs.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse as _;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use roomtape_core::ServerConfig;

use crate::AppError;

/// What one client may cost the listener; `None` is no limit. See [`ServerConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// From the first byte of a request head to its end.
    pub header_timeout: Option<Duration>,
    /// From a request's head to the end of its body.
    pub body_timeout: Option<Duration>,
    /// Nothing moving while the server waits on the client.
    pub idle_timeout: Option<Duration>,
    /// Open sockets per address (IPv6: per /64).
    pub max_connections_per_ip: Option<usize>,
}

impl Limits {
    /// The limits the settings ask for (0 turns one off).
    pub fn from_config(c: &ServerConfig) -> Self {
        let secs = |s: u32| (s > 0).then(|| Duration::from_secs(s.into()));
        Limits {
            header_timeout: secs(c.header_timeout_secs),
            body_timeout: secs(c.body_timeout_secs),
            idle_timeout: secs(c.idle_timeout_secs),
            max_connections_per_ip: (c.max_connections_per_ip > 0)
                .then_some(c.max_connections_per_ip as usize),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&ServerConfig::default())
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes; then stops accepting,
/// lets every connection finish the answer it is sending, and returns when all are closed.
/// (Upgraded connections, the live rooms' WebSockets, belong to their rooms by then.)
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> io::Result<()> {
    let open = Arc::new(PerAddress::default());
    let (stop_tx, _) = watch::channel(false);
    // Every connection holds a receiver; the sender sees them all gone when they have closed.
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                    ) {
                        // Out of file descriptors, most likely: give closing ones a moment.
                        tracing::error!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = open.take(peer.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(%peer, "connection closed: too many open from this address");
            drop(stream);
            continue;
        };
        // Answers and live-room messages are written whole; Nagle would only hold small ones
        // back for the client's delayed ACK (40 ms on Linux).
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            slot,
            app.clone(),
            limits,
            stop_tx.subscribe(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// One connection, until it closes, is upgraded, times out, or shutdown has let it finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
        _slot: slot,
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |req| {
            handle(
                app.clone(),
                req,
                peer,
                activity.clone(),
                limits.body_timeout,
            )
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Our own clock (`Activity`) times heads, so that a kept-alive connection waits for
        // its next request by `idle_timeout`, and a head once begun is timed by its own.
        .header_read_timeout(None)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let expired = activity.expired(limits);
    tokio::pin!(expired);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            what = &mut expired => {
                // Dropping the connection closes the socket: nothing more is owed to it.
                tracing::debug!(%peer, "connection closed: {what}");
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// One request: the client address for handlers, the body's deadline, and the clock's phases.
async fn handle(
    app: Router,
    req: Request<Incoming>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    body_timeout: Option<Duration>,
) -> Result<Response<Body>, Infallible> {
    activity.set(Phase::Handling);
    let late = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|body| match body_timeout {
        Some(t) if !http_body::Body::is_end_stream(&body) => Body::new(Deadline {
            body,
            sleep: Box::pin(tokio::time::sleep(t)),
            late: late.clone(),
        }),
        _ => Body::new(body),
    });
    req.extensions_mut().insert(ConnectInfo(peer));
    let mut res = app.oneshot(req).await.unwrap_or_else(|e| match e {});
    if late.load(Ordering::Relaxed) {
        // Whatever the handler made of the broken body: the client was too slow, and the rest
        // of its body is not waited for.
        res = AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive in time",
        )
        .into_response();
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    activity.set(Phase::Sending);
    Ok(res.map(|body| Body::new(Sending { body, activity })))
}

/// Where a connection is, for its timers.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's first byte, since then (`idle_timeout`).
    Waiting(Instant),
    /// A request head has begun at that moment (`header_timeout`).
    Head(Instant),
    /// A handler has the request (its body has `body_timeout`); no connection timer.
    Handling,
    /// The answer is going out; the client must keep reading (`idle_timeout`).
    Sending,
}

#[derive(Debug)]
struct Clock {
    phase: Phase,
    /// The last time bytes moved either way.
    last_io: Instant,
}

/// A connection's clock, fed by its socket and its requests.
#[derive(Debug)]
struct Activity {
    clock: Mutex<Clock>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        let now = Instant::now();
        Activity {
            clock: Mutex::new(Clock {
                phase: Phase::Waiting(now),
                last_io: now,
            }),
            changed: Notify::new(),
        }
    }

    fn clock(&self) -> MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) {
        let now = Instant::now();
        let mut c = self.clock();
        c.last_io = now;
        if let Phase::Waiting(_) = c.phase {
            c.phase = Phase::Head(now);
            drop(c);
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        self.clock().last_io = Instant::now();
    }

    fn set(&self, phase: Phase) {
        {
            let mut c = self.clock();
            c.phase = phase;
            c.last_io = Instant::now();
        }
        self.changed.notify_one();
    }

    /// When the connection is to be closed if nothing changes, and why.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        let c = self.clock();
        match c.phase {
            Phase::Waiting(since) => limits
                .idle_timeout
                .map(|t| (since + t, "no request came (idle timeout)")),
            Phase::Head(since) => limits
                .header_timeout
                .map(|t| (since + t, "the request head was too slow (header timeout)")),
            Phase::Handling => None,
            Phase::Sending => limits
                .idle_timeout
                .map(|t| (c.last_io + t, "the client stopped reading (idle timeout)")),
        }
    }

    /// Completes when a limit has run out.
    async fn expired(&self, limits: Limits) -> &'static str {
        loop {
            // Taken before the deadline is read, so a change in between is not missed.
            let changed = self.changed.notified();
            match self.deadline(&limits) {
                None => changed.await,
                Some((at, what)) if at <= Instant::now() => return what,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
            }
        }
    }
}

/// The socket, telling the clock when bytes move, and holding its address's slot for as long
/// as it is open (after an upgrade too).
#[derive(Debug)]
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A request body with a deadline: past it, reading fails and the request is marked late.
struct Deadline {
    body: Incoming,
    sleep: Pin<Box<Sleep>>,
    late: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.body.is_end_stream() {
            return Poll::Ready(None);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.late.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )
            .into())));
        }
        Pin::new(&mut this.body).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An answer's body; when hyper is done with it, the connection waits for a request again.
struct Sending {
    body: Body,
    activity: Arc<Activity>,
}

impl http_body::Body for Sending {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        self.activity.set(Phase::Waiting(Instant::now()));
    }
}

/// Open sockets per client address.
#[derive(Debug, Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more socket from `ip`, unless it has `max` open already.
    fn take(self: &Arc<Self>, ip: IpAddr, max: Option<usize>) -> Option<Slot> {
        let key = address_of(ip);
        let mut open = self.lock();
        let n = open.entry(key).or_insert(0);
        if max.is_some_and(|max| *n >= max) {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: self.clone(),
            key,
        })
    }
}

/// One open socket counted against its address until it closes.
#[derive(Debug)]
struct Slot {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Entry::Occupied(mut e) = self.table.lock().entry(self.key) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

/// What the cap counts: an IPv4 address, or an IPv6 /64 (one host is given a whole /64, so
/// counting single IPv6 addresses would limit nothing).
fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_per_host_and_per_ipv6_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_of(ip("203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(address_of(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(
            address_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        let open = Arc::new(PerAddress::default());
        let a = open.take(ip("2001:db8:1:2::1"), Some(2)).unwrap();
        let b = open.take(ip("2001:db8:1:2::2"), Some(2)).unwrap();
        assert!(open.take(ip("2001:db8:1:2::3"), Some(2)).is_none());
        assert!(open.take(ip("2001:db8:1:3::1"), Some(2)).is_some());
        drop(a);
        assert!(open.take(ip("2001:db8:1:2::3"), Some(2)).is_some());
        drop(b);
        assert!(open.lock().is_empty(), "every slot given back");
    }
}
