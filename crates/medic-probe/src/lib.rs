//! Health probes. Each probe runs once per call and classifies the result
//! into a [`ProbeFailure`] the engine can diagnose; nothing here decides
//! whether a service is unhealthy (that is the engine's failure rule).
#![forbid(unsafe_code)]

use std::error::Error as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use medic_config::ProbeKind;
use medic_core::ProbeFailure;

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    pub ok: bool,
    pub latency: Duration,
    pub failure: Option<ProbeFailure>,
    pub detail: String,
}

impl ProbeOutcome {
    fn ok(latency: Duration, detail: String) -> Self {
        ProbeOutcome {
            ok: true,
            latency,
            failure: None,
            detail,
        }
    }

    fn fail(latency: Duration, failure: ProbeFailure, detail: String) -> Self {
        ProbeOutcome {
            ok: false,
            latency,
            failure: Some(failure),
            detail,
        }
    }
}

/// A probe ready to run many times: an HTTP probe's URL is parsed once
/// (parsing it was a tenth of medic's instructions per probe), and a
/// keep-alive probe holds its one idle connection here.
#[derive(Debug)]
pub struct Prepared {
    kind: ProbeKind,
    url: Option<reqwest::Url>,
    /// Keep-alive over plain HTTP: where to dial, the `Host` header and the
    /// request target, computed once.
    target: Option<Target>,
    /// The one connection this probe keeps between runs (never more).
    conn: Option<Kept>,
    /// Read buffers reused by every run over a kept connection.
    buf: Buffers,
    /// The URL redirected once: from then on every run goes through the
    /// client that follows redirects (a new connection per run).
    redirects: bool,
}

#[derive(Debug)]
struct Target {
    /// `host:port` to dial (IPv6 literals in brackets).
    addr: String,
    /// The request, written once: `GET` with `Host` and `User-Agent`.
    request: Vec<u8>,
}

/// A kept connection: its socket (closed when this is dropped) and when it
/// was dialled. The probe's own task reads and writes it: no connection
/// task, no channel between them.
#[derive(Debug)]
struct Kept {
    stream: tokio::net::TcpStream,
    dialled: Instant,
}

impl Kept {
    /// Open, idle and with nothing unread: the peer has neither closed it
    /// nor said anything unasked (an idle timeout's `408`, say). Costs a
    /// system call only when the socket was last seen readable.
    fn idle(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

impl Prepared {
    pub fn new(kind: ProbeKind) -> Prepared {
        let url = match &kind {
            // A URL that does not parse is left to the request, which
            // reports it as the probe's failure.
            ProbeKind::Http { url, .. } => reqwest::Url::parse(url).ok(),
            _ => None,
        };
        let target = match (&kind, &url) {
            (
                ProbeKind::Http {
                    keep_alive: Some(_),
                    ..
                },
                Some(u),
            ) if u.scheme() == "http" && u.username().is_empty() && u.password().is_none() => {
                u.host_str().map(|host| {
                    let port = u.port_or_known_default().unwrap_or(80);
                    let mut path_and_query = u.path().to_string();
                    if let Some(q) = u.query() {
                        path_and_query.push('?');
                        path_and_query.push_str(q);
                    }
                    let host_header = match u.port() {
                        Some(p) => format!("{host}:{p}"),
                        None => host.to_string(),
                    };
                    Target {
                        addr: format!("{host}:{port}"),
                        request: format!(
                            "GET {path_and_query} HTTP/1.1\r\nhost: {host_header}\r\nuser-agent: {USER_AGENT}\r\n\r\n"
                        )
                        .into_bytes(),
                    }
                })
            }
            _ => None,
        };
        Prepared {
            kind,
            url,
            target,
            conn: None,
            buf: Buffers::default(),
            redirects: false,
        }
    }

    /// Close the kept connection (if any): the next run dials a new one.
    /// The daemon calls this after it acted on the probe's service, so a
    /// restarted service is probed through a connection it accepted.
    pub fn forget_connection(&mut self) {
        self.conn = None;
    }

    /// Whether a connection is kept for the next run.
    pub fn has_connection(&self) -> bool {
        self.conn.is_some()
    }
}

/// Runs HTTP, TCP and exec probes. Process liveness is answered by the
/// supervisor, not here.
#[derive(Clone)]
pub struct Prober {
    /// A new connection per run (it also tests that the service accepts):
    /// `keep_alive: false`, `https` URLs, and URLs that redirect.
    http: reqwest::Client,
}

const USER_AGENT: &str = concat!("medic/", env!("CARGO_PKG_VERSION"));

/// Most body bytes an HTTP probe reads (1 MiB, far more than a health page):
/// a larger body fails the run instead of growing medic's memory.
pub const MAX_BODY_BYTES: usize = 1 << 20;

fn body_too_large(latency: Duration) -> ProbeOutcome {
    ProbeOutcome::fail(
        latency,
        ProbeFailure::Other,
        format!("body larger than {MAX_BODY_BYTES} bytes"),
    )
}

impl Prober {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Prober { http })
    }

    /// Run one probe. `Process` and `Docker` kinds return `None`: the caller
    /// asks its supervisor or the Docker Engine (medic-exec).
    pub async fn run(&self, kind: &ProbeKind, timeout: Duration) -> Option<ProbeOutcome> {
        self.run_prepared(&mut Prepared::new(kind.clone()), timeout)
            .await
    }

    /// [`Prober::run`] for a probe prepared once (its URL parsed once, not
    /// per run; a keep-alive probe's connection kept in `p`).
    pub async fn run_prepared(&self, p: &mut Prepared, timeout: Duration) -> Option<ProbeOutcome> {
        Some(match &p.kind {
            ProbeKind::Http {
                url,
                expect_status,
                body_contains,
                keep_alive,
            } => {
                if let (Some(max_age), Some(target), false) = (*keep_alive, &p.target, p.redirects)
                {
                    let (o, redirected) = kept(
                        &mut p.conn,
                        &mut p.buf,
                        target,
                        max_age,
                        *expect_status,
                        body_contains.as_deref(),
                        timeout,
                    )
                    .await;
                    // Between runs a probe keeps at most small buffers (a
                    // large body's are given back now, not at the next run).
                    p.buf.reset();
                    if !redirected {
                        return Some(o);
                    }
                    // Follow it like the client without keep-alive does,
                    // from now on for every run of this probe.
                    p.redirects = true;
                    p.conn = None;
                }
                http(
                    &self.http,
                    p.url.as_ref(),
                    url,
                    *expect_status,
                    body_contains.as_deref(),
                    timeout,
                )
                .await
            }
            ProbeKind::Tcp { address } => tcp(address, timeout).await,
            ProbeKind::Exec { command } => exec(command, timeout).await,
            ProbeKind::Process | ProbeKind::Docker { .. } => return None,
        })
    }
}

/// Why a run on a kept connection did not get an answer.
#[derive(Debug)]
enum KeptError {
    Refused(std::io::Error),
    Io(std::io::Error),
    /// The peer closed the connection before the answer was complete.
    Closed,
    /// Not an HTTP/1 answer this client reads (the text says why).
    Invalid(&'static str),
    /// The body is longer than [`MAX_BODY_BYTES`].
    TooLarge,
}

impl KeptError {
    fn outcome(self, latency: Duration) -> ProbeOutcome {
        match self {
            KeptError::Refused(e) => ProbeOutcome::fail(
                latency,
                ProbeFailure::Refused,
                format!("connection refused ({e})"),
            ),
            KeptError::Io(e) => ProbeOutcome::fail(latency, ProbeFailure::Other, error_chain(&e)),
            KeptError::Closed => ProbeOutcome::fail(
                latency,
                ProbeFailure::Other,
                "connection closed before the answer was complete".into(),
            ),
            KeptError::Invalid(why) => ProbeOutcome::fail(
                latency,
                ProbeFailure::Other,
                format!("invalid HTTP answer: {why}"),
            ),
            KeptError::TooLarge => body_too_large(latency),
        }
    }
}

/// Most bytes of an answer's status line and headers.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in an answer.
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read (a health answer fits in one).
const READ_CHUNK: usize = 2048;
/// A probe keeps its read buffers between runs up to this capacity (a
/// larger one, after a large body, is given back).
const KEEP_BUFFER_BYTES: usize = 16 * 1024;

async fn dial(target: &Target) -> Result<Kept, KeptError> {
    let stream = tokio::net::TcpStream::connect(&target.addr)
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                KeptError::Refused(e)
            } else {
                KeptError::Io(e)
            }
        })?;
    let _ = stream.set_nodelay(true);
    Ok(Kept {
        stream,
        dialled: Instant::now(),
    })
}

/// The buffers a probe reads its answers into, kept between runs.
#[derive(Debug, Default)]
struct Buffers {
    /// The answer as read from the socket.
    raw: Vec<u8>,
    /// The body, chunked transfer coding removed.
    body: Vec<u8>,
}

impl Buffers {
    /// Empty, and no larger than [`KEEP_BUFFER_BYTES`].
    fn reset(&mut self) {
        for b in [&mut self.raw, &mut self.body] {
            if b.capacity() > KEEP_BUFFER_BYTES {
                *b = Vec::new();
            } else {
                b.clear();
            }
        }
    }
}

/// The answer's status and whether the connection may carry another
/// request; the body is in [`Buffers::body`].
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    reusable: bool,
}

/// How the body of an answer ends (RFC 9112 section 6.3, for a GET).
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads more of the answer into `raw`; `Closed` at end of stream.
async fn fill<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    raw: &mut Vec<u8>,
) -> Result<(), KeptError> {
    use tokio::io::AsyncReadExt as _;
    raw.reserve(READ_CHUNK);
    match r.read_buf(raw).await {
        Ok(0) => Err(KeptError::Closed),
        Ok(_) => Ok(()),
        Err(e) => Err(KeptError::Io(e)),
    }
}

/// The status line and headers: the status, the framing of the body,
/// whether the peer keeps the connection, and where the body starts.
fn head(raw: &[u8]) -> Result<Option<(u16, Framing, bool, usize)>, KeptError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(KeptError::Invalid("too many headers")),
        Err(_) => return Err(KeptError::Invalid("malformed status line or headers")),
    };
    let status = resp.code.unwrap_or(0);
    let http10 = resp.version == Some(0);
    let mut length: Option<usize> = None;
    let mut coded = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(KeptError::Invalid("bad content-length"))?;
            let v = usize::try_from(v).unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != v) {
                return Err(KeptError::Invalid("conflicting content-length"));
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            // Chunked when it is the last coding applied.
            chunked = h
                .value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in h.value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = if status == 101 || status == 204 || status == 304 || (100..200).contains(&status)
    {
        Framing::Empty
    } else if coded {
        if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(l) => Framing::Length(l),
            None => Framing::UntilClose,
        }
    };
    let keep = !close
        && (!http10 || keep_alive)
        && status != 101
        && !matches!(framing, Framing::UntilClose);
    Ok(Some((status, framing, keep, n)))
}

/// Reads one answer from `r` into `buf` (its body in `buf.body`, at most
/// [`MAX_BODY_BYTES`]). Informational answers (1xx but 101) are skipped.
async fn read_answer<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Buffers,
) -> Result<Answer, KeptError> {
    let raw = &mut buf.raw;
    let body = &mut buf.body;
    let mut pos = 0;
    let (status, framing, mut reusable) = loop {
        match head(&raw[pos..])? {
            Some((status, _, _, n)) if (100..200).contains(&status) && status != 101 => pos += n,
            Some((status, framing, keep, n)) => {
                pos += n;
                break (status, framing, keep);
            }
            None if raw.len() - pos > MAX_HEAD_BYTES => {
                return Err(KeptError::Invalid("status line and headers too large"))
            }
            None => fill(r, raw).await?,
        }
    };
    match framing {
        Framing::Empty => {}
        Framing::Length(n) => {
            if n > MAX_BODY_BYTES {
                return Err(KeptError::TooLarge);
            }
            while raw.len() - pos < n {
                fill(r, raw).await?;
            }
            body.extend_from_slice(&raw[pos..pos + n]);
            pos += n;
        }
        Framing::UntilClose => loop {
            if raw.len() - pos > MAX_BODY_BYTES {
                return Err(KeptError::TooLarge);
            }
            match fill(r, raw).await {
                Ok(()) => {}
                Err(KeptError::Closed) => {
                    body.extend_from_slice(&raw[pos..]);
                    pos = raw.len();
                    break;
                }
                Err(e) => return Err(e),
            }
        },
        Framing::Chunked => loop {
            // Chunks already decoded are dropped from `raw`, so it stays
            // about the size of one read plus one chunk.
            if pos > KEEP_BUFFER_BYTES {
                raw.drain(..pos);
                pos = 0;
            }
            let (line, size) = match httparse::parse_chunk_size(&raw[pos..]) {
                Ok(httparse::Status::Complete(c)) => c,
                Ok(httparse::Status::Partial) if raw.len() - pos > 1024 => {
                    return Err(KeptError::Invalid("chunk size line too long"))
                }
                Ok(httparse::Status::Partial) => {
                    fill(r, raw).await?;
                    continue;
                }
                Err(_) => return Err(KeptError::Invalid("bad chunk size")),
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > MAX_BODY_BYTES - body.len() {
                return Err(KeptError::TooLarge);
            }
            if size == 0 {
                pos += line;
                // Trailer fields, then the empty line that ends the answer.
                loop {
                    match raw[pos..].windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            pos += 2;
                            break;
                        }
                        Some(k) => pos += k + 2,
                        None if raw.len() - pos > MAX_HEAD_BYTES => {
                            return Err(KeptError::Invalid("trailer fields too large"))
                        }
                        None => fill(r, raw).await?,
                    }
                }
                break;
            }
            while raw.len() - pos < line + size + 2 {
                fill(r, raw).await?;
            }
            let data = pos + line;
            if &raw[data + size..data + size + 2] != b"\r\n" {
                return Err(KeptError::Invalid("chunk not followed by CRLF"));
            }
            body.extend_from_slice(&raw[data..data + size]);
            pos = data + size + 2;
        },
    }
    // Bytes past the answer: the peer said more than was asked.
    if pos != raw.len() {
        reusable = false;
    }
    Ok(Answer { status, reusable })
}

/// One request on `conn`: its answer (the body in `buf.body`).
async fn request(conn: &mut Kept, target: &Target, buf: &mut Buffers) -> Result<Answer, KeptError> {
    use tokio::io::AsyncWriteExt as _;
    buf.reset();
    conn.stream
        .write_all(&target.request)
        .await
        .map_err(KeptError::Io)?;
    read_answer(&mut conn.stream, buf).await
}

/// A run over the probe's kept connection (plain HTTP, `keep_alive`):
/// reused while younger than `max_age` and still open, else dialled anew.
/// A run that fails in any way (refused, reset, timed out, bad status, body
/// mismatch) closes it, so the next run dials. A reused connection the peer
/// closed just before the request (an idle timeout on its side) is retried
/// once on a new connection within the same timeout: that retry tests the
/// listener like any dial. The second value is true when the answer is a
/// redirect the probe does not expect (the caller follows it).
#[allow(clippy::too_many_arguments)]
async fn kept(
    slot: &mut Option<Kept>,
    buf: &mut Buffers,
    target: &Target,
    max_age: Duration,
    expect_status: u16,
    body_contains: Option<&str>,
    timeout: Duration,
) -> (ProbeOutcome, bool) {
    let start = Instant::now();
    let reuse = slot
        .take()
        .filter(|k| k.dialled.elapsed() < max_age && k.idle());
    let attempt = async {
        let reused = reuse.is_some();
        let mut conn = match reuse {
            Some(k) => k,
            None => dial(target).await?,
        };
        match request(&mut conn, target, buf).await {
            Ok(r) => Ok((conn, r)),
            // Closed under the request (the peer's idle timeout, just now).
            Err(KeptError::Io(_) | KeptError::Closed) if reused => {
                drop(conn);
                let mut fresh = dial(target).await?;
                let r = request(&mut fresh, target, buf).await?;
                Ok((fresh, r))
            }
            Err(e) => Err(e),
        }
    };
    let (conn, Answer { status, reusable }) = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (e.outcome(start.elapsed()), false),
        Err(_) => {
            return (
                ProbeOutcome::fail(start.elapsed(), ProbeFailure::Timeout, "timed out".into()),
                false,
            )
        }
    };
    let latency = start.elapsed();
    if (300..400).contains(&status) && status != expect_status {
        return (ProbeOutcome::ok(latency, String::new()), true);
    }
    let body = String::from_utf8_lossy(&buf.body);
    let o = judge(latency, status, &body, expect_status, body_contains);
    if o.ok && reusable {
        *slot = Some(conn);
    }
    (o, false)
}

/// The probe's verdict on an answer.
fn judge(
    latency: Duration,
    status: u16,
    body: &str,
    expect_status: u16,
    body_contains: Option<&str>,
) -> ProbeOutcome {
    if status != expect_status {
        return ProbeOutcome::fail(
            latency,
            ProbeFailure::BadStatus(status),
            format!("HTTP {status}, expected {expect_status}"),
        );
    }
    if let Some(needle) = body_contains {
        if !body.contains(needle) {
            return ProbeOutcome::fail(
                latency,
                ProbeFailure::BodyMismatch,
                format!("body does not contain `{needle}`"),
            );
        }
    }
    ProbeOutcome::ok(latency, format!("HTTP {status}"))
}

async fn http(
    client: &reqwest::Client,
    parsed: Option<&reqwest::Url>,
    url: &str,
    expect_status: u16,
    body_contains: Option<&str>,
    timeout: Duration,
) -> ProbeOutcome {
    let start = Instant::now();
    let req = match parsed {
        Some(u) => client.get(u.clone()),
        None => client.get(url),
    };
    let resp = req.timeout(timeout).send().await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return classify_reqwest(start.elapsed(), &e),
    };
    let status = resp.status().as_u16();
    let body =
        match tokio::time::timeout(timeout.saturating_sub(start.elapsed()), bounded(resp)).await {
            Ok(Ok(Some(b))) => String::from_utf8_lossy(&b).into_owned(),
            Ok(Ok(None)) => return body_too_large(start.elapsed()),
            Ok(Err(e)) => return classify_reqwest(start.elapsed(), &e),
            Err(_) => {
                return ProbeOutcome::fail(
                    start.elapsed(),
                    ProbeFailure::Timeout,
                    format!("body not received within {}ms", timeout.as_millis()),
                )
            }
        };
    judge(start.elapsed(), status, &body, expect_status, body_contains)
}

/// The body, or `None` when it is longer than [`MAX_BODY_BYTES`] (read no
/// further).
async fn bounded(mut resp: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

fn classify_reqwest(latency: Duration, e: &reqwest::Error) -> ProbeOutcome {
    if e.is_timeout() {
        return ProbeOutcome::fail(latency, ProbeFailure::Timeout, "timed out".into());
    }
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return ProbeOutcome::fail(
                    latency,
                    ProbeFailure::Refused,
                    "connection refused".into(),
                );
            }
        }
        src = s.source();
    }
    ProbeOutcome::fail(latency, ProbeFailure::Other, error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

async fn tcp(address: &str, timeout: Duration) -> ProbeOutcome {
    let start = Instant::now();
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(_)) => ProbeOutcome::ok(start.elapsed(), "connected".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            ProbeOutcome::fail(start.elapsed(), ProbeFailure::Refused, e.to_string())
        }
        Ok(Err(e)) => ProbeOutcome::fail(start.elapsed(), ProbeFailure::Other, e.to_string()),
        Err(_) => ProbeOutcome::fail(
            start.elapsed(),
            ProbeFailure::Timeout,
            format!("no connection within {}ms", timeout.as_millis()),
        ),
    }
}

async fn exec(command: &[String], timeout: Duration) -> ProbeOutcome {
    let start = Instant::now();
    let Some((prog, args)) = command.split_first() else {
        return ProbeOutcome::fail(start.elapsed(), ProbeFailure::Other, "empty command".into());
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            return ProbeOutcome::fail(
                start.elapsed(),
                ProbeFailure::ExecFailed(None),
                format!("cannot run {prog}: {e}"),
            )
        }
    };
    // A check that times out (or whose probe is dropped) is killed with
    // everything it started: its whole process group.
    let _group = KillGroupOnDrop(child.id());
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) if out.status.success() => ProbeOutcome::ok(start.elapsed(), "exit 0".into()),
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr.chars().take(200).collect();
            ProbeOutcome::fail(
                start.elapsed(),
                ProbeFailure::ExecFailed(out.status.code()),
                format!("{}: {}", out.status, tail.trim()),
            )
        }
        Ok(Err(e)) => ProbeOutcome::fail(
            start.elapsed(),
            ProbeFailure::ExecFailed(None),
            e.to_string(),
        ),
        Err(_) => ProbeOutcome::fail(
            start.elapsed(),
            ProbeFailure::Timeout,
            format!("check did not finish within {}ms", timeout.as_millis()),
        ),
    }
}

/// SIGKILLs a process group on drop (no-op when it has already exited).
struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 1)
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{routing::get, Router};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    async fn server() -> String {
        let app = Router::new()
            .route("/ok", get(|| async { "status ok" }))
            .route(
                "/moved",
                get(|| async { axum::response::Redirect::temporary("/ok") }),
            )
            .route(
                "/err",
                get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route("/huge", get(|| async { "x".repeat(MAX_BODY_BYTES + 1) }))
            .route("/big", get(|| async { "x".repeat(MAX_BODY_BYTES / 2) }))
            .route(
                "/hang",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        a.to_string()
    }

    #[tokio::test]
    async fn http_probe_classifies_results() {
        let base = server().await;
        let p = Prober::new().unwrap();
        let t = Duration::from_millis(500);
        let http = |path: &str, body: Option<&str>| ProbeKind::Http {
            url: format!("{base}{path}"),
            expect_status: 200,
            body_contains: body.map(str::to_string),
            keep_alive: None,
        };
        let ok = p.run(&http("/ok", Some("ok")), t).await.unwrap();
        assert!(ok.ok, "{ok:?}");
        let mismatch = p.run(&http("/ok", Some("nope")), t).await.unwrap();
        assert_eq!(mismatch.failure, Some(ProbeFailure::BodyMismatch));
        let err = p.run(&http("/err", None), t).await.unwrap();
        assert_eq!(err.failure, Some(ProbeFailure::BadStatus(500)));
        // A body past the bound fails the run, with or without keep-alive.
        for keep_alive in [None, Some(Duration::from_secs(30))] {
            let huge = ProbeKind::Http {
                url: format!("{base}/huge"),
                expect_status: 200,
                body_contains: None,
                keep_alive,
            };
            let o = p.run(&huge, Duration::from_secs(5)).await.unwrap();
            assert_eq!(o.failure, Some(ProbeFailure::Other), "{o:?}");
            assert!(o.detail.contains("body larger than"), "{o:?}");
        }
        let hang = p.run(&http("/hang", None), t).await.unwrap();
        assert_eq!(hang.failure, Some(ProbeFailure::Timeout));
        assert!(hang.latency >= t);
        let refused = ProbeKind::Http {
            url: format!("http://{}/", closed_port()),
            expect_status: 200,
            body_contains: None,
            keep_alive: None,
        };
        let r = p.run(&refused, t).await.unwrap();
        assert_eq!(r.failure, Some(ProbeFailure::Refused), "{r:?}");
    }

    /// How the test server answers; the test changes it between runs.
    #[derive(Default)]
    struct Behaviour {
        /// Connections accepted so far.
        accepted: AtomicUsize,
        /// Answer 500 instead of 200.
        error: AtomicBool,
        /// Read requests but never answer.
        hang: AtomicBool,
        /// Close the connection right after each answer (without saying so).
        close_after: AtomicBool,
        /// After each answer, an unasked `408` (what a server's idle
        /// timeout may send before it closes).
        unasked_408: AtomicBool,
        /// Stop accepting: the listener is closed, kept connections go on.
        stop_accepting: tokio::sync::Notify,
    }

    /// A hand-written HTTP/1.1 server on loopback that counts the
    /// connections it accepts.
    async fn counting_server() -> (String, Arc<Behaviour>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let b = Arc::new(Behaviour::default());
        let shared = b.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = tokio::select! {
                    r = l.accept() => match r { Ok(c) => c, Err(_) => return },
                    _ = shared.stop_accepting.notified() => return, // drops the listener
                };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let b = shared.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let Ok(k) = s.read(&mut chunk).await else {
                            return;
                        };
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if b.hang.load(Ordering::SeqCst) {
                                continue;
                            }
                            let answer: &[u8] = if b.error.load(Ordering::SeqCst) {
                                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom"
                            } else {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                            };
                            if s.write_all(answer).await.is_err() {
                                return;
                            }
                            if b.close_after.load(Ordering::SeqCst) {
                                return;
                            }
                            if b.unasked_408.load(Ordering::SeqCst) {
                                // Later, when the client no longer reads.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                let unasked =
                                    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n";
                                if s.write_all(unasked).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/healthz?t=1"), b)
    }

    fn keep(url: &str, max_age: Option<Duration>) -> Prepared {
        Prepared::new(ProbeKind::Http {
            url: url.to_string(),
            expect_status: 200,
            body_contains: None,
            keep_alive: max_age,
        })
    }

    const MINUTE: Option<Duration> = Some(Duration::from_secs(60));

    #[tokio::test]
    async fn keep_alive_reuses_one_connection_and_no_keep_alive_dials_every_run() {
        let p = Prober::new().unwrap();
        let t = Duration::from_secs(2);
        for (keep_alive, connections) in [(None, 3), (MINUTE, 1)] {
            let (url, b) = counting_server().await;
            let mut probe = keep(&url, keep_alive);
            for _ in 0..3 {
                let o = p.run_prepared(&mut probe, t).await.unwrap();
                assert!(o.ok, "{o:?}");
                assert_eq!(o.detail, "HTTP 200");
            }
            assert_eq!(
                b.accepted.load(Ordering::SeqCst),
                connections,
                "keep_alive: {keep_alive:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_failed_or_timed_out_run_drops_the_kept_connection() {
        let p = Prober::new().unwrap();
        let (url, b) = counting_server().await;
        let mut probe = keep(&url, MINUTE);
        let t = Duration::from_millis(300);
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        assert!(probe.has_connection());
        // A bad status: the run fails and the connection is closed.
        b.error.store(true, Ordering::SeqCst);
        let o = p.run_prepared(&mut probe, t).await.unwrap();
        assert_eq!(o.failure, Some(ProbeFailure::BadStatus(500)), "{o:?}");
        assert!(!probe.has_connection());
        b.error.store(false, Ordering::SeqCst);
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
        // No answer: a timeout, and the next run dials again.
        b.hang.store(true, Ordering::SeqCst);
        let o = p.run_prepared(&mut probe, t).await.unwrap();
        assert_eq!(o.failure, Some(ProbeFailure::Timeout), "{o:?}");
        assert!(!probe.has_connection());
        b.hang.store(false, Ordering::SeqCst);
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 3);
        // After medic acted on the service (forget_connection): a new one.
        probe.forget_connection();
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_connection_older_than_its_max_age_is_not_reused() {
        let p = Prober::new().unwrap();
        let (url, b) = counting_server().await;
        let mut probe = keep(&url, Some(Duration::from_millis(100)));
        let t = Duration::from_secs(2);
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_service_that_closes_idle_connections_is_not_a_failure() {
        // The server closes after each answer without `Connection: close`
        // (an idle timeout on its side): the reused connection is dead, the
        // run dials again within the same timeout and succeeds.
        let p = Prober::new().unwrap();
        let (url, b) = counting_server().await;
        b.close_after.store(true, Ordering::SeqCst);
        let mut probe = keep(&url, MINUTE);
        for k in 0..5 {
            let o = p
                .run_prepared(&mut probe, Duration::from_secs(2))
                .await
                .unwrap();
            assert!(o.ok, "run {k}: {o:?}");
            tokio::time::sleep(Duration::from_millis(k * 10)).await;
        }
        assert_eq!(b.accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_unasked_answer_on_an_idle_connection_is_not_taken_for_the_next_one() {
        // The server sends a 408 on the idle connection: the next run dials
        // anew instead of reading that 408 as its answer.
        let p = Prober::new().unwrap();
        let (url, b) = counting_server().await;
        b.unasked_408.store(true, Ordering::SeqCst);
        let mut probe = keep(&url, MINUTE);
        for k in 0..3 {
            let o = p
                .run_prepared(&mut probe, Duration::from_secs(2))
                .await
                .unwrap();
            assert!(o.ok, "run {k}: {o:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(b.accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_listener_that_stops_accepting_is_seen_once_the_connection_ages_out() {
        // The service keeps serving the kept connection but accepts no new
        // one (its listener is gone): the probe sees it at its first run
        // after the max age, when it dials.
        let p = Prober::new().unwrap();
        let (url, b) = counting_server().await;
        let max_age = Duration::from_millis(300);
        let mut probe = keep(&url, Some(max_age));
        let t = Duration::from_secs(1);
        assert!(p.run_prepared(&mut probe, t).await.unwrap().ok);
        b.stop_accepting.notify_one();
        // Wait until the listener is closed (a fresh connect is refused).
        let addr = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Reused while young: the kept connection still answers.
        let o = p.run_prepared(&mut probe, t).await.unwrap();
        assert!(o.ok, "{o:?}");
        // Runs every 50 ms: within max age + one interval a run dials and is
        // refused (bounded generously at 40 runs = 2 s against 350 ms).
        let mut refused_at = None;
        for k in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let o = p.run_prepared(&mut probe, t).await.unwrap();
            if !o.ok {
                assert_eq!(o.failure, Some(ProbeFailure::Refused), "{o:?}");
                refused_at = Some(k);
                break;
            }
        }
        assert!(refused_at.is_some(), "never noticed the closed listener");
        assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keep_alive_follows_redirects_like_a_new_connection_does() {
        let base = server().await;
        let p = Prober::new().unwrap();
        let mut probe = Prepared::new(ProbeKind::Http {
            url: format!("{base}/moved"),
            expect_status: 200,
            body_contains: Some("status ok".into()),
            keep_alive: MINUTE,
        });
        for _ in 0..2 {
            let o = p
                .run_prepared(&mut probe, Duration::from_secs(2))
                .await
                .unwrap();
            assert!(o.ok, "{o:?}");
        }
        // The server's 500 is still a failure over a kept connection.
        let mut err = keep(&format!("{base}/err"), MINUTE);
        let o = p
            .run_prepared(&mut err, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(o.failure, Some(ProbeFailure::BadStatus(500)));
    }

    /// Reads `text` as one answer (in pieces of `step` bytes).
    async fn answer_of(text: &[u8], step: usize) -> (Result<Answer, KeptError>, Vec<u8>) {
        let mut b = tokio_test_reader(text, step);
        let mut buf = Buffers::default();
        let a = read_answer(&mut b, &mut buf).await;
        (a, buf.body)
    }

    /// An `AsyncRead` that hands out `text` at most `step` bytes per read,
    /// then the end of the stream.
    fn tokio_test_reader(text: &[u8], step: usize) -> Pieces {
        Pieces(text.chunks(step.max(1)).map(<[u8]>::to_vec).collect())
    }

    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl tokio::io::AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(mut c) = self.0.pop_front() {
                let n = c.len().min(buf.remaining());
                buf.put_slice(&c[..n]);
                if n < c.len() {
                    let rest = c.split_off(n);
                    self.0.push_front(rest);
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn answers_are_framed_like_http_1_1_says() {
        for step in [1, 7, 4096] {
            // Content-Length; bytes after the answer: not reused.
            let (a, body) =
                answer_of(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", step).await;
            assert_eq!(
                a.unwrap(),
                Answer {
                    status: 200,
                    reusable: true
                }
            );
            assert_eq!(body, b"ok");
            // (Read with the answer; bytes that come later make the next
            // run's `Kept::idle` false.)
            let (a, _) = answer_of(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokX", 4096).await;
            assert!(!a.unwrap().reusable);
            // Chunked, with an extension and a trailer.
            let (a, body) = answer_of(
                b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nboom\r\n3\r\n!!!\r\n0\r\nt: v\r\n\r\n",
                step,
            )
            .await;
            assert_eq!(
                a.unwrap(),
                Answer {
                    status: 500,
                    reusable: true
                }
            );
            assert_eq!(body, b"boom!!!");
            // Informational answers are skipped.
            let (a, body) = answer_of(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                step,
            )
            .await;
            assert_eq!(
                a.unwrap(),
                Answer {
                    status: 204,
                    reusable: true
                }
            );
            assert!(body.is_empty());
            // Until the peer closes: never reused.
            let (a, body) = answer_of(b"HTTP/1.1 200 OK\r\n\r\nall of it", step).await;
            assert_eq!(
                a.unwrap(),
                Answer {
                    status: 200,
                    reusable: false
                }
            );
            assert_eq!(body, b"all of it");
            // `Connection: close`, and HTTP/1.0 without keep-alive.
            for head in [
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"[..],
                b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n",
            ] {
                assert!(!answer_of(head, step).await.0.unwrap().reusable);
            }
            let (a, _) = answer_of(
                b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n",
                step,
            )
            .await;
            assert!(a.unwrap().reusable);
            // Cut short, and not HTTP.
            let (a, _) = answer_of(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok", step).await;
            assert!(matches!(a, Err(KeptError::Closed)), "{a:?}");
            let (a, _) = answer_of(b"SSH-2.0-OpenSSH\r\n\r\n", step).await;
            assert!(matches!(a, Err(KeptError::Invalid(_))), "{a:?}");
        }
        // Bodies past the bound, announced or not.
        let big = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert!(matches!(
            answer_of(big.as_bytes(), 4096).await.0,
            Err(KeptError::TooLarge)
        ));
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..=MAX_BODY_BYTES / 4096 {
            chunked.extend_from_slice(b"1000\r\n");
            chunked.extend_from_slice(&[b'x'; 4096]);
            chunked.extend_from_slice(b"\r\n");
        }
        assert!(matches!(
            answer_of(&chunked, 4096).await.0,
            Err(KeptError::TooLarge)
        ));
        let mut close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        close.extend(std::iter::repeat_n(b'x', MAX_BODY_BYTES + 1));
        assert!(matches!(
            answer_of(&close, 65536).await.0,
            Err(KeptError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn a_large_body_does_not_stay_in_the_probe_between_runs() {
        let base = server().await;
        let p = Prober::new().unwrap();
        let mut probe = keep(&format!("{base}/big"), MINUTE);
        let o = p
            .run_prepared(&mut probe, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(o.ok, "{o:?}");
        assert!(probe.has_connection());
        assert!(probe.buf.raw.capacity() <= KEEP_BUFFER_BYTES);
        assert!(probe.buf.body.capacity() <= KEEP_BUFFER_BYTES);
    }

    #[tokio::test]
    async fn tcp_and_exec_probes() {
        let base = server().await;
        let p = Prober::new().unwrap();
        let t = Duration::from_millis(500);
        let up = p
            .run(
                &ProbeKind::Tcp {
                    address: base.trim_start_matches("http://").into(),
                },
                t,
            )
            .await
            .unwrap();
        assert!(up.ok);
        let down = p
            .run(
                &ProbeKind::Tcp {
                    address: closed_port(),
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(down.failure, Some(ProbeFailure::Refused));
        let yes = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["true".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert!(yes.ok);
        let no = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(no.failure, Some(ProbeFailure::ExecFailed(Some(3))));
        let slow = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["sleep".into(), "5".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(slow.failure, Some(ProbeFailure::Timeout));
        // What a timed-out check started is killed with it.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bg.pid");
        let bg = p
            .run(
                &ProbeKind::Exec {
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        format!("sleep 300 & echo $! > {}; wait", file.display()),
                    ],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(bg.failure, Some(ProbeFailure::Timeout));
        let pid = std::fs::read_to_string(&file).unwrap();
        let stat = |pid: &str| std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        let mut gone = false;
        for _ in 0..100 {
            // Gone, or a zombie waiting for a reaper.
            gone = stat(&pid).map_or(true, |s| s.contains(") Z "));
            if gone {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone, "the check's background child {pid} survived");
        let missing = p
            .run(
                &ProbeKind::Exec {
                    command: vec!["/nonexistent/medic-check".into()],
                },
                t,
            )
            .await
            .unwrap();
        assert_eq!(missing.failure, Some(ProbeFailure::ExecFailed(None)));
        assert!(p.run(&ProbeKind::Process, t).await.is_none());
    }
}
