//! The HTTP endpoint that serves the metrics (`server --metrics-port`):
//! hyper's HTTP/1 server, on a single-threaded tokio runtime on a thread of
//! its own.
//!
//! The endpoint shares the process's threads and file descriptors with the
//! gRPC server, and anyone who can reach its port can open connections to
//! it, so everything it holds is bounded: the connections it keeps open
//! (at most [`ConnectionLimits::max_open`], the oldest closed to make room
//! for a new one), how long each may take to send its request head, how
//! long each may live, and its buffers. It has one thread whatever its
//! load, and an error accepting a connection (out of file descriptors,
//! say) is logged and waited out, never the end of the endpoint.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::TcpListener as StdTcpListener;
use std::pin::pin;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::warn;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task;

use super::Metrics;
use crate::open_files;

/// The most connections the endpoint keeps open. A deployment points one
/// or two Prometheus servers (or an agent) at a server, each with a
/// connection or two; the rest of the room is for scrapers that reconnect
/// before their old connection has been closed. More would only be more
/// memory and file descriptors handed to whoever floods the port.
const MAX_OPEN_CONNECTIONS: usize = 512;

/// The share of the process's open files the endpoint may hold: a quarter,
/// so that a flood of its port leaves the rest to the gRPC server, whose
/// connections they are for.
const OPEN_FILES_SHARE: u64 = 4;

/// How long a client has to send a whole request head, from the moment its
/// connection is accepted or its previous answer sent: a connection kept
/// alive and idle that long is closed too. A scraper sends its request as
/// soon as it has connected; one that scrapes less often than this
/// connects anew for each scrape, which costs it next to nothing.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may live, however busy: the header timeout closes
/// a client that goes quiet, this one a client that never does.
const MAX_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// When a connection's lifetime is up, how long the response it is sending
/// (if any) has to finish before the connection is dropped anyway (a client
/// that does not read would otherwise hold it).
const CLOSING_GRACE: Duration = Duration::from_secs(5);

/// The most a connection buffers (hyper's minimum): a scrape's request head
/// is a few hundred bytes, and a client may not make the endpoint hold more
/// for it than this.
const MAX_BUFFER_BYTES: usize = 8 * 1024;

/// How long the endpoint waits after failing to accept a connection: the
/// errors that are not about one connection (no file descriptor left, no
/// memory) last a while, and retrying at once would spin a core on them.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// At most one log line per this interval about failed accepts; the ones in
/// between are counted in the next line.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The content type of Prometheus's text format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoint holds at most, per connection and in all.
#[derive(Clone, Copy, Debug)]
struct ConnectionLimits {
    max_open: usize,
    header_read_timeout: Duration,
    max_lifetime: Duration,
}

impl ConnectionLimits {
    /// The limits for this process: [`MAX_OPEN_CONNECTIONS`], or a quarter
    /// of its limit on open files if that is fewer. Read once the server
    /// has set that limit (`open_files`), at start-up.
    fn for_this_process() -> ConnectionLimits {
        let open_files = open_files::current_limit().unwrap_or(u64::MAX);
        let share = usize::try_from(open_files / OPEN_FILES_SHARE).unwrap_or(usize::MAX);
        ConnectionLimits {
            max_open: share.clamp(1, MAX_OPEN_CONNECTIONS),
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_lifetime: MAX_CONNECTION_LIFETIME,
        }
    }
}

/// The HTTP endpoint serving `GET /metrics`. Dropping it stops it.
pub struct MetricsEndpoint {
    url: String,
    /// Dropped to stop the endpoint: its thread then returns, and its
    /// runtime closes every connection.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `host` (an IPv6 literal in brackets) and `port` (0 picks a
    /// free one) and serves `metrics` from a thread of its own.
    pub fn start(host: &str, port: u16, metrics: Arc<Metrics>) -> io::Result<MetricsEndpoint> {
        MetricsEndpoint::start_with(host, port, metrics, ConnectionLimits::for_this_process())
    }

    fn start_with(
        host: &str,
        port: u16,
        metrics: Arc<Metrics>,
        limits: ConnectionLimits,
    ) -> io::Result<MetricsEndpoint> {
        // Bound here, not on the endpoint's thread, so that a port in use
        // is the caller's error.
        let listener = StdTcpListener::bind(format!("{host}:{port}"))?;
        let url = format!("http://{host}:{}/metrics", listener.local_addr()?.port());
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _in_runtime = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("fibonacci-metrics".to_string())
            .spawn(move || serve_until(runtime, listener, metrics, limits, stopped))?;
        Ok(MetricsEndpoint {
            url,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://HOST:PORT/metrics`, with the port the system picked if 0 was
    /// asked.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The endpoint's thread: accepts and serves until `stopped` resolves (its
/// sender sends or is dropped), then drops the runtime, and with it every
/// connection's task and socket.
fn serve_until(
    runtime: Runtime,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    limits: ConnectionLimits,
    stopped: oneshot::Receiver<()>,
) {
    runtime.block_on(async {
        let serving = pin!(accept_loop(listener, metrics, limits));
        future::select(stopped, serving).await;
    });
}

/// Accepts connections for ever, each served by a task of its own, at most
/// `limits.max_open` of them at once.
///
/// When that many are open, a new connection closes the oldest rather than
/// waiting for a free place: an idle flood then cannot lock a scraper out,
/// since each new connection, the scraper's too, is kept and the flood's
/// oldest are closed. A scraper is served within moments of connecting, so
/// only a flood of `max_open` connections in those moments could close it
/// before its answer; refusing new connections instead would lock out
/// every scraper for as long as the flood holds its connections.
async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>, limits: ConnectionLimits) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUFFER_BYTES);
    // Oldest first.
    let mut open: VecDeque<task::JoinHandle<()>> = VecDeque::with_capacity(limits.max_open);
    let mut accept_errors = AcceptErrorLog::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if open.len() >= limits.max_open {
                    open.retain(|connection| !connection.is_finished());
                }
                if open.len() >= limits.max_open {
                    close_oldest(&mut open).await;
                }
                let connection = serve_connection(
                    stream,
                    http.clone(),
                    Arc::clone(&metrics),
                    limits.max_lifetime,
                );
                open.push_back(tokio::spawn(connection));
            }
            Err(error) if is_about_one_connection(&error) => {
                // The next connection is not affected: no reason to wait.
                accept_errors.note(&error);
            }
            Err(error) => {
                accept_errors.note(&error);
                if is_out_of_resources(&error) {
                    // Gives a file descriptor back, so that the next
                    // connection (maybe a scraper's) can be accepted.
                    open.retain(|connection| !connection.is_finished());
                    close_oldest(&mut open).await;
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Closes the oldest open connection, and lets its task be dropped (and
/// its socket closed) before the next connection is accepted, so that the
/// endpoint never holds more than its limit.
async fn close_oldest(open: &mut VecDeque<task::JoinHandle<()>>) {
    if let Some(oldest) = open.pop_front() {
        oldest.abort();
        task::yield_now().await;
    }
}

/// Serves one connection until the client closes it, it fails, or
/// `lifetime` is up; then the response in flight (if any) has
/// [`CLOSING_GRACE`] to finish.
async fn serve_connection(
    stream: TcpStream,
    http: http1::Builder,
    metrics: Arc<Metrics>,
    lifetime: Duration,
) {
    let service = service_fn(move |request| {
        let response = answer(&request, &metrics);
        future::ready(Ok::<_, Infallible>(response))
    });
    let mut connection = pin!(http.serve_connection(TokioIo::new(stream), service));
    // An error is the client's (it went, or sent something that is not
    // HTTP): there is nobody to tell.
    if tokio::time::timeout(lifetime, connection.as_mut())
        .await
        .is_err()
    {
        connection.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(CLOSING_GRACE, connection).await;
    }
}

fn answer(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    // The request target as sent, query included, as the path is matched
    // whole: `/metrics?x` is not `/metrics`.
    let target = request
        .uri()
        .path_and_query()
        .map_or("", |target| target.as_str());
    let (status, content_type, body) = match (request.method(), target) {
        (&Method::GET, "/metrics") => (StatusCode::OK, TEXT_FORMAT, metrics.encode()),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An accept that failed because of the connection itself (its client
/// gave up before it was accepted), not because of the endpoint.
fn is_about_one_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) || error.raw_os_error() == Some(libc::EPROTO)
}

/// An accept that failed because the process or the system is out of file
/// descriptors or memory.
fn is_out_of_resources(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The log of failed accepts: the first at once, then at most one line per
/// [`ACCEPT_ERROR_LOG_INTERVAL`], with the count of those not logged.
#[derive(Default)]
struct AcceptErrorLog {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrorLog {
    fn note(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|last| now.duration_since(last) < ACCEPT_ERROR_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        if self.unlogged == 0 {
            warn!("metrics endpoint: cannot accept a connection: {error}");
        } else {
            warn!(
                "metrics endpoint: cannot accept a connection: {error} \
                 ({} more failed accepts not logged)",
                self.unlogged
            );
        }
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn endpoint(limits: ConnectionLimits) -> (MetricsEndpoint, String) {
        let endpoint =
            MetricsEndpoint::start_with("127.0.0.1", 0, Arc::new(Metrics::new()), limits)
                .expect("a free port on loopback");
        let address = endpoint
            .url()
            .trim_start_matches("http://")
            .trim_end_matches("/metrics")
            .to_string();
        (endpoint, address)
    }

    /// Generous enough that no test below reaches them unless it means to.
    fn limits(max_open: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_open,
            header_read_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(30),
        }
    }

    fn connect(address: &str) -> TcpStream {
        let stream = TcpStream::connect(address).expect("the endpoint accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        stream
    }

    /// The whole answer to `request` on a connection of its own, which the
    /// request asks the server to close.
    fn exchange(address: &str, request: &str) -> String {
        let mut stream = connect(address);
        stream.write_all(request.as_bytes()).expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("an answer");
        answer
    }

    fn get(address: &str, target: &str) -> String {
        exchange(
            address,
            &format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"),
        )
    }

    /// Whether the server has closed `stream` (end of stream or reset),
    /// waiting at most `wait` for it.
    fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
        stream.set_read_timeout(Some(wait)).expect("a timeout");
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    fn status_line(answer: &str) -> &str {
        answer.lines().next().unwrap_or("")
    }

    fn body(answer: &str) -> &str {
        answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    }

    #[test]
    fn answers_get_metrics_and_nothing_else() {
        let (_endpoint, address) = endpoint(limits(4));
        let metrics = get(&address, "/metrics");
        assert_eq!(status_line(&metrics), "HTTP/1.1 200 OK");
        assert!(metrics.contains(&format!("\r\ncontent-type: {TEXT_FORMAT}\r\n")));
        assert!(body(&metrics).contains("\n# TYPE fibonacci_server_calls_in_flight gauge\n"));

        let post = exchange(
            &address,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status_line(&post), "HTTP/1.1 405 Method Not Allowed");
        assert!(post.contains("\r\ncontent-type: text/plain\r\n"));
        assert_eq!(body(&post), "only GET\n");

        for target in ["/", "/metrics/", "/metrics?name=x"] {
            let other = get(&address, target);
            assert_eq!(status_line(&other), "HTTP/1.1 404 Not Found", "{target}");
            assert_eq!(body(&other), "metrics are at /metrics\n", "{target}");
        }
    }

    #[test]
    fn a_new_connection_past_the_limit_closes_the_oldest() {
        let (_endpoint, address) = endpoint(limits(3));
        let mut idle: Vec<TcpStream> = (0..3).map(|_| connect(&address)).collect();
        // Accepted: an answer on a fourth connection comes after them.
        assert_eq!(status_line(&get(&address, "/metrics")), "HTTP/1.1 200 OK");
        // That fourth connection closed the first idle one, and the rest
        // are still open.
        assert!(closed_by_server(&mut idle[0], Duration::from_secs(10)));
        assert!(!closed_by_server(&mut idle[1], Duration::from_millis(200)));
        assert!(!closed_by_server(&mut idle[2], Duration::from_millis(200)));

        // A flood of many times the limit still leaves room for a scrape.
        let flood: Vec<TcpStream> = (0..30).map(|_| connect(&address)).collect();
        assert_eq!(status_line(&get(&address, "/metrics")), "HTTP/1.1 200 OK");
        drop(flood);
    }

    #[test]
    fn idle_connections_are_closed() {
        let (_endpoint, address) = endpoint(ConnectionLimits {
            max_open: 4,
            header_read_timeout: Duration::from_millis(200),
            max_lifetime: Duration::from_secs(30),
        });
        // Never a byte: the request head never arrives.
        let mut silent = connect(&address);
        assert!(closed_by_server(&mut silent, Duration::from_secs(10)));

        let (_endpoint, address) = endpoint(ConnectionLimits {
            max_open: 4,
            header_read_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_millis(200),
        });
        // A request answered, then the connection kept alive and idle: only
        // its lifetime is short enough to close it within the test.
        let mut kept = connect(&address);
        kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("sent");
        let mut answer = [0u8; 12];
        kept.read_exact(&mut answer).expect("an answer");
        assert_eq!(&answer, b"HTTP/1.1 404");
        let mut rest = Vec::new();
        kept.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        // The rest of the answer, then the end of the stream.
        assert!(kept.read_to_end(&mut rest).is_ok());
    }

    #[test]
    fn dropping_the_endpoint_stops_it_and_closes_its_connections() {
        let (endpoint, address) = endpoint(limits(4));
        let mut idle = connect(&address);
        assert_eq!(status_line(&get(&address, "/metrics")), "HTTP/1.1 200 OK");
        let started = Instant::now();
        drop(endpoint);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(closed_by_server(&mut idle, Duration::from_secs(10)));
        assert_eq!(
            TcpStream::connect(&address)
                .map_err(|error| error.kind())
                .err(),
            Some(ErrorKind::ConnectionRefused)
        );
    }
}
