//! A small HTTP service with fault injection, used by medic's demo and tests
//! as the thing being healed.
//!
//! # Endpoints
//!
//! | endpoint | behaviour |
//! | --- | --- |
//! | `GET /healthz` | `200 {"status":"ok","pid":…,"started_at":"…"}`; `500 {"status":"error",…}` under the error fault |
//! | `GET /readyz` | `200 {"status":"ready"}`; `503 {"status":"not_ready"}` under the error fault |
//! | `GET /work` | `200 {"status":"done"}` after the current latency; `500` under the error fault; `503` for every second request while shedding; with `--downstream URL` it also calls `URL/work` and answers `502` when that fails |
//! | `GET /metrics` | OpenMetrics text: `fixture_requests_total{path}`, `fixture_request_duration_seconds`, `fixture_errors_total`, `fixture_shed_total` |
//! | `POST /fault/hang` | healthz, readyz and work never answer until the fault is cleared |
//! | `POST /fault/error` | healthz and work return 500 (readyz 503) |
//! | `POST /fault/slow?ms=N` | healthz and work take N ms longer (default 2000, at most 3 600 000) |
//! | `POST /fault/crash` | replies, then the process exits with code 1 (see [`FixtureHandle::crash_requested`]) |
//! | `POST /fault/clear` | clears hang, error and slow (not shedding), the pool fault (as `/admin/pool/reset`) and the queue fault (the backlog is gone) |
//! | `POST /fault/pool` | connection-pool exhaustion: from now on every connection `/healthz` and `/work` check out of the fixture's pool of [`POOL_SIZE`] "DB connections" is held (a leak, like a stuck query); once all are held, requests queue for one and answer `503 {"status":"pool_timeout"}` after [`POOL_WAIT`] |
//! | `POST /fault/queue?per_s=N` | a filling queue: the backlog grows by N items per second (default [`DEFAULT_QUEUE_PER_S`], 1 to [`MAX_QUEUE_PER_S`]; a second POST changes the rate and keeps the backlog) up to [`MAX_QUEUE_DEPTH`], and every `/healthz` and `/work` first waits [`QUEUE_ITEM_WAIT`] per queued item, at most [`MAX_QUEUE_WAIT`]: the callers slow down as the queue fills. Without the fault the depth is a normal [`NORMAL_QUEUE_DEPTH`] ± [`QUEUE_NOISE`] items, a different value at each read (a history to compare with) |
//! | `GET /admin/queue` | `{"depth","per_s"}` (`per_s` null without the fault); the depth is also the gauge `fixture_queue_depth` on `/metrics` |
//! | `GET /admin/pool` | `{"size","in_use","waiting","timeouts","leaking"}`; also `fixture_pool_in_use` / `fixture_pool_waiting` on `/metrics` |
//! | `POST /admin/pool/reset` | resets the pool: the held connections are closed and the leak stops (the remediation, class `reset_connection_pool`) |
//! | `POST /admin/shed` | shedding on: the slow fault's extra latency is skipped and every second `/work` gets 503 |
//! | `POST /admin/unshed` | shedding off |
//! | `GET /admin/state` | the current [`FixtureState`] as JSON |
//!
//! Fault and admin endpoints never wait on a fault: they answer promptly.
//! Faults are independent flags; hang takes precedence over the others.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

/// Default extra latency for `POST /fault/slow` without `ms`.
pub const DEFAULT_SLOW_MS: u64 = 2000;
/// Largest accepted `ms` for `POST /fault/slow`.
pub const MAX_SLOW_MS: u64 = 3_600_000;
/// Connections in the fixture's pool (`POST /fault/pool`).
pub const POOL_SIZE: usize = 4;
/// How long a request waits for a pool connection before it answers 503.
pub const POOL_WAIT: Duration = Duration::from_millis(500);
/// Backlog growth per second for `POST /fault/queue` without `per_s`.
pub const DEFAULT_QUEUE_PER_S: u64 = 50;
/// Largest accepted `per_s` for `POST /fault/queue`.
pub const MAX_QUEUE_PER_S: u64 = 100_000;
/// The backlog never grows beyond this many items.
pub const MAX_QUEUE_DEPTH: u64 = 10_000_000;
/// Queue depth without the queue fault (before noise).
pub const NORMAL_QUEUE_DEPTH: u64 = 5;
/// The depth read varies by up to this many items either way.
pub const QUEUE_NOISE: u64 = 2;
/// How long `/healthz` and `/work` wait per queued item.
pub const QUEUE_ITEM_WAIT: Duration = Duration::from_millis(1);
/// The longest a request waits for the queue, however deep.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// How long the process waits after answering `POST /fault/crash` before exiting.
pub const CRASH_DELAY: Duration = Duration::from_millis(100);

/// How to run the fixture as a process.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub bind: IpAddr,
    pub port: u16,
    /// Print a line to stderr and exit with code 1 before binding.
    pub crash_on_start: bool,
    /// Wait this long before binding (a slow-starting service): until then
    /// connections are refused and `/healthz` does not answer.
    pub startup_delay: Duration,
    /// Base URL of a service this one calls: each `/work` also calls
    /// `DOWNSTREAM/work` and fails with 502 when that fails (issue 9 chains).
    pub downstream: Option<String>,
}

/// Current fault and shedding state, as returned by `GET /admin/state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureState {
    pub hang: bool,
    pub error: bool,
    /// Extra latency in ms for healthz and work, if the slow fault is set.
    pub slow_ms: Option<u64>,
    pub shedding: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: String,
}

struct Metrics {
    registry: Registry,
    requests: Family<PathLabels, Counter>,
    duration: Histogram,
    errors: Counter,
    shed: Counter,
    pool_in_use: Gauge,
    pool_waiting: Gauge,
    queue_depth: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<PathLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let errors = Counter::default();
        let shed = Counter::default();
        registry.register(
            "fixture_requests",
            "HTTP requests received, by route",
            requests.clone(),
        );
        registry.register(
            "fixture_request_duration_seconds",
            "HTTP request duration in seconds",
            duration.clone(),
        );
        registry.register(
            "fixture_errors",
            "Responses with status 500 caused by the error fault",
            errors.clone(),
        );
        registry.register(
            "fixture_shed",
            "Requests to /work rejected with 503 while shedding",
            shed.clone(),
        );
        let pool_in_use = Gauge::default();
        let pool_waiting = Gauge::default();
        registry.register(
            "fixture_pool_in_use",
            "Connections of the fixture's pool in use (held ones included)",
            pool_in_use.clone(),
        );
        registry.register(
            "fixture_pool_waiting",
            "Requests waiting for a connection of the fixture's pool",
            pool_waiting.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "fixture_queue_depth",
            "Items in the fixture's work queue (grows under the queue fault)",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            errors,
            shed,
            pool_in_use,
            pool_waiting,
            queue_depth,
        }
    }
}

struct Shared {
    pid: u32,
    started_at: String,
    state: watch::Sender<FixtureState>,
    metrics: Metrics,
    work_counter: AtomicU64,
    crash: Notify,
    crash_flag: std::sync::atomic::AtomicBool,
    downstream: Option<(reqwest::Client, String)>,
    pool: Pool,
    queue: Queue,
}

/// A bounded pool of pretend DB connections. Normally a connection is
/// returned as soon as the request is done; under the pool fault it is held
/// (leaked) until the pool is reset.
struct Pool {
    sem: tokio::sync::Semaphore,
    leaking: std::sync::atomic::AtomicBool,
    held: AtomicU64,
    waiting: AtomicU64,
    timeouts: AtomicU64,
}

impl Pool {
    fn new() -> Self {
        Pool {
            sem: tokio::sync::Semaphore::new(POOL_SIZE),
            leaking: std::sync::atomic::AtomicBool::new(false),
            held: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    fn in_use(&self) -> u64 {
        (POOL_SIZE as u64).saturating_sub(self.sem.available_permits() as u64)
    }
}

/// The fixture's work queue: a normal depth with noise, and under the queue
/// fault a backlog growing at a fixed rate since the fault was set.
struct Queue {
    fault: std::sync::Mutex<Option<QueueFault>>,
    /// xorshift state for the noise.
    noise: AtomicU64,
}

#[derive(Clone, Copy)]
struct QueueFault {
    since: Instant,
    per_s: u64,
    /// The backlog already there at `since` (from an earlier rate).
    base: u64,
}

impl QueueFault {
    fn backlog(&self, now: Instant) -> u64 {
        let grown =
            u128::from(self.per_s) * now.saturating_duration_since(self.since).as_millis() / 1000;
        u64::try_from(grown)
            .unwrap_or(u64::MAX)
            .saturating_add(self.base)
            .min(MAX_QUEUE_DEPTH)
    }
}

impl Queue {
    fn new() -> Self {
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos().into());
        Queue {
            fault: std::sync::Mutex::new(None),
            noise: AtomicU64::new(seed | 1),
        }
    }

    fn fault(&self) -> std::sync::MutexGuard<'_, Option<QueueFault>> {
        // The guarded value is plain data, valid even after a panic elsewhere.
        self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A noise term in `0..=2·QUEUE_NOISE` (xorshift64).
    fn noise(&self) -> u64 {
        let mut x = 0;
        let _ = self
            .noise
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mut v| {
                v ^= v << 13;
                v ^= v >> 7;
                v ^= v << 17;
                x = v;
                Some(v)
            });
        x % (2 * QUEUE_NOISE + 1)
    }

    /// The depth now: the normal depth with noise, plus the backlog.
    fn depth(&self) -> u64 {
        let backlog = self.fault().map_or(0, |f| f.backlog(Instant::now()));
        (NORMAL_QUEUE_DEPTH + self.noise())
            .saturating_sub(QUEUE_NOISE)
            .saturating_add(backlog)
            .min(MAX_QUEUE_DEPTH)
    }

    /// Sets (or changes) the growth rate, keeping the backlog so far.
    fn set(&self, per_s: u64) {
        let now = Instant::now();
        let mut f = self.fault();
        let base = f.map_or(0, |f| f.backlog(now));
        *f = Some(QueueFault {
            since: now,
            per_s,
            base,
        });
    }

    fn clear(&self) {
        *self.fault() = None;
    }
}

/// How long a request waits behind a queue of `depth` items.
pub fn queue_wait(depth: u64) -> Duration {
    QUEUE_ITEM_WAIT
        .saturating_mul(u32::try_from(depth).unwrap_or(u32::MAX))
        .min(MAX_QUEUE_WAIT)
}

/// Reads the queue depth (updating its gauge).
fn queue_depth(shared: &Shared) -> u64 {
    let depth = shared.queue.depth();
    shared
        .metrics
        .queue_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    depth
}

/// Waits behind the queue, in proportion to its depth.
async fn wait_queue(shared: &Shared) {
    tokio::time::sleep(queue_wait(queue_depth(shared))).await;
}

/// Checks a connection out of the pool for one request: `Err` (a 503
/// response) when none is free within [`POOL_WAIT`].
async fn with_connection(shared: &Shared) -> Result<(), Response> {
    let pool = &shared.pool;
    pool.waiting.fetch_add(1, Ordering::SeqCst);
    shared.metrics.pool_waiting.inc();
    let got = tokio::time::timeout(POOL_WAIT, pool.sem.acquire()).await;
    pool.waiting.fetch_sub(1, Ordering::SeqCst);
    shared.metrics.pool_waiting.dec();
    let result = match got {
        Ok(Ok(permit)) => {
            if pool.leaking.load(Ordering::SeqCst) {
                // The leak: the connection is never given back.
                permit.forget();
                pool.held.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
        _ => {
            pool.timeouts.fetch_add(1, Ordering::SeqCst);
            Err(json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "pool_timeout"}),
            ))
        }
    };
    shared
        .metrics
        .pool_in_use
        .set(i64::try_from(pool.in_use()).unwrap_or(i64::MAX));
    result
}

/// In-process handle to a fixture router: read or change its state, and
/// observe crash requests.
#[derive(Clone)]
pub struct FixtureHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FixtureHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureHandle")
            .field("state", &self.state())
            .finish()
    }
}

impl FixtureHandle {
    /// Snapshot of the current fault/shed state.
    pub fn state(&self) -> FixtureState {
        self.shared.state.borrow().clone()
    }

    /// Replaces the state (e.g. to inject a fault without HTTP).
    pub fn set_state(&self, state: FixtureState) {
        self.shared.state.send_replace(state);
    }

    /// Resolves once `POST /fault/crash` has been answered. [`run`] exits the
    /// process when this fires; in-process users decide for themselves.
    pub async fn crash_requested(&self) {
        loop {
            let notified = self.shared.crash.notified();
            if self.shared.crash_flag.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// True once `POST /fault/crash` has been received.
    pub fn crash_was_requested(&self) -> bool {
        self.shared.crash_flag.load(Ordering::SeqCst)
    }

    /// Process id reported by `/healthz`.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }
}

/// Builds the fixture's router and a handle to its state.
pub fn router() -> (Router, FixtureHandle) {
    router_with(None)
}

/// [`router`] whose `/work` also calls `downstream/work`.
pub fn router_with(downstream: Option<String>) -> (Router, FixtureHandle) {
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_string());
    let (state, _) = watch::channel(FixtureState::default());
    let shared = Arc::new(Shared {
        pid: std::process::id(),
        started_at,
        state,
        metrics: Metrics::new(),
        work_counter: AtomicU64::new(0),
        crash: Notify::new(),
        crash_flag: std::sync::atomic::AtomicBool::new(false),
        downstream: downstream.map(|u| {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default();
            (client, u.trim_end_matches('/').to_string())
        }),
        pool: Pool::new(),
        queue: Queue::new(),
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/work", get(work))
        .route("/metrics", get(metrics))
        .route("/fault/hang", post(fault_hang))
        .route("/fault/error", post(fault_error))
        .route("/fault/slow", post(fault_slow))
        .route("/fault/crash", post(fault_crash))
        .route("/fault/clear", post(fault_clear))
        .route("/admin/shed", post(admin_shed))
        .route("/admin/unshed", post(admin_unshed))
        .route("/admin/state", get(admin_state))
        .route("/fault/pool", post(fault_pool))
        .route("/admin/pool", get(admin_pool))
        .route("/admin/pool/reset", post(admin_pool_reset))
        .route("/fault/queue", post(fault_queue))
        .route("/admin/queue", get(admin_queue))
        .layer(middleware::from_fn_with_state(shared.clone(), track))
        .with_state(shared.clone());
    (app, FixtureHandle { shared })
}

/// Runs the fixture until the process is killed (or crashes on request).
///
/// Prints `medic-fixture listening on ADDR pid=PID` to stdout once bound, so a
/// parent that passed port 0 can read the real port.
pub async fn run(opts: FixtureOptions) -> anyhow::Result<()> {
    if opts.crash_on_start {
        eprintln!("medic-fixture: crash_on_start is set; exiting with code 1");
        std::process::exit(1);
    }
    if !opts.startup_delay.is_zero() {
        eprintln!(
            "medic-fixture: starting up; binding in {}ms",
            opts.startup_delay.as_millis()
        );
        tokio::time::sleep(opts.startup_delay).await;
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(opts.bind, opts.port))
        .await
        .map_err(|e| anyhow::anyhow!("binding {}:{}: {e}", opts.bind, opts.port))?;
    let addr = listener.local_addr()?;
    let (app, handle) = router_with(opts.downstream.clone());
    println!("medic-fixture listening on {addr} pid={}", handle.pid());
    let crash = handle.clone();
    tokio::spawn(async move {
        crash.crash_requested().await;
        tokio::time::sleep(CRASH_DELAY).await;
        eprintln!("medic-fixture: crash fault requested; exiting with code 1");
        std::process::exit(1);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn track(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    shared
        .metrics
        .requests
        .get_or_create(&PathLabels { path })
        .inc();
    let start = Instant::now();
    let resp = next.run(req).await;
    shared
        .metrics
        .duration
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Waits while the hang fault is set. Returns the state after the wait.
async fn wait_unhung(shared: &Shared) -> FixtureState {
    let mut rx = shared.state.subscribe();
    let state = match rx.wait_for(|s| !s.hang).await {
        Ok(s) => s.clone(),
        // The sender lives in `shared`, so it cannot be dropped while we hold it.
        Err(_) => shared.state.borrow().clone(),
    };
    state
}

/// Applies the slow fault unless shedding is on.
async fn apply_latency(state: &FixtureState) {
    if let Some(ms) = state.slow_ms {
        if !state.shedding {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let state = wait_unhung(&shared).await;
    wait_queue(&shared).await;
    if let Err(r) = with_connection(&shared).await {
        return r;
    }
    apply_latency(&state).await;
    // Re-read: the fault may have changed while we slept.
    let state = shared.state.borrow().clone();
    let (status, text) = if state.error {
        shared.metrics.errors.inc();
        (StatusCode::INTERNAL_SERVER_ERROR, "error")
    } else {
        (StatusCode::OK, "ok")
    };
    json(
        status,
        serde_json::json!({"status": text, "pid": shared.pid, "started_at": shared.started_at}),
    )
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let state = wait_unhung(&shared).await;
    if state.error {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not_ready"}),
        )
    } else {
        json(StatusCode::OK, serde_json::json!({"status": "ready"}))
    }
}

async fn work(State(shared): State<Arc<Shared>>) -> Response {
    let state = wait_unhung(&shared).await;
    if state.shedding {
        let n = shared.work_counter.fetch_add(1, Ordering::Relaxed);
        if n % 2 == 1 {
            shared.metrics.shed.inc();
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "shed"}),
            );
        }
    }
    wait_queue(&shared).await;
    if let Err(r) = with_connection(&shared).await {
        return r;
    }
    apply_latency(&state).await;
    if shared.state.borrow().error {
        shared.metrics.errors.inc();
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"status": "error"}),
        );
    }
    if let Some((client, url)) = &shared.downstream {
        let ok = client
            .get(format!("{url}/work"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            shared.metrics.errors.inc();
            return json(
                StatusCode::BAD_GATEWAY,
                serde_json::json!({"status": "downstream failed"}),
            );
        }
    }
    json(StatusCode::OK, serde_json::json!({"status": "done"}))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    queue_depth(&shared);
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &shared.metrics.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}

fn state_response(shared: &Shared) -> Response {
    json(
        StatusCode::OK,
        serde_json::to_value(shared.state.borrow().clone()).unwrap_or_default(),
    )
}

fn modify(shared: &Shared, f: impl FnOnce(&mut FixtureState)) -> Response {
    shared.state.send_modify(f);
    state_response(shared)
}

async fn fault_hang(State(shared): State<Arc<Shared>>) -> Response {
    modify(&shared, |s| s.hang = true)
}

async fn fault_error(State(shared): State<Arc<Shared>>) -> Response {
    modify(&shared, |s| s.error = true)
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

async fn fault_slow(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<SlowQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let ms = match query {
        Ok(Query(q)) => q.ms.unwrap_or(DEFAULT_SLOW_MS),
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("invalid ms: {}", e.body_text())}),
            )
        }
    };
    if ms > MAX_SLOW_MS {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("ms must be at most {MAX_SLOW_MS}")}),
        );
    }
    modify(&shared, |s| s.slow_ms = Some(ms))
}

async fn fault_crash(State(shared): State<Arc<Shared>>) -> Response {
    shared.crash_flag.store(true, Ordering::SeqCst);
    shared.crash.notify_waiters();
    json(
        StatusCode::OK,
        serde_json::json!({"status": "crashing", "exit_code": 1}),
    )
}

async fn fault_clear(State(shared): State<Arc<Shared>>) -> Response {
    reset_pool(&shared);
    shared.queue.clear();
    modify(&shared, |s| {
        s.hang = false;
        s.error = false;
        s.slow_ms = None;
    })
}

async fn admin_shed(State(shared): State<Arc<Shared>>) -> Response {
    modify(&shared, |s| s.shedding = true)
}

async fn admin_unshed(State(shared): State<Arc<Shared>>) -> Response {
    modify(&shared, |s| s.shedding = false)
}

async fn admin_state(State(shared): State<Arc<Shared>>) -> Response {
    state_response(&shared)
}

async fn fault_pool(State(shared): State<Arc<Shared>>) -> Response {
    shared.pool.leaking.store(true, Ordering::SeqCst);
    pool_response(&shared)
}

fn pool_response(shared: &Shared) -> Response {
    let p = &shared.pool;
    json(
        StatusCode::OK,
        serde_json::json!({
            "size": POOL_SIZE,
            "in_use": p.in_use(),
            "waiting": p.waiting.load(Ordering::SeqCst),
            "timeouts": p.timeouts.load(Ordering::SeqCst),
            "leaking": p.leaking.load(Ordering::SeqCst),
        }),
    )
}

/// Stops the leak and closes the held connections (they are free again).
fn reset_pool(shared: &Shared) {
    let p = &shared.pool;
    p.leaking.store(false, Ordering::SeqCst);
    let held = p.held.swap(0, Ordering::SeqCst);
    p.sem
        .add_permits(usize::try_from(held).unwrap_or(POOL_SIZE).min(POOL_SIZE));
    shared
        .metrics
        .pool_in_use
        .set(i64::try_from(p.in_use()).unwrap_or(i64::MAX));
}

async fn admin_pool(State(shared): State<Arc<Shared>>) -> Response {
    pool_response(&shared)
}

async fn admin_pool_reset(State(shared): State<Arc<Shared>>) -> Response {
    reset_pool(&shared);
    pool_response(&shared)
}

#[derive(Deserialize)]
struct QueueQuery {
    per_s: Option<u64>,
}

async fn fault_queue(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let per_s = match query {
        Ok(Query(q)) => q.per_s.unwrap_or(DEFAULT_QUEUE_PER_S),
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("invalid per_s: {}", e.body_text())}),
            )
        }
    };
    if !(1..=MAX_QUEUE_PER_S).contains(&per_s) {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": format!("per_s must be 1 to {MAX_QUEUE_PER_S}")}),
        );
    }
    shared.queue.set(per_s);
    queue_response(&shared)
}

fn queue_response(shared: &Shared) -> Response {
    let per_s = shared.queue.fault().map(|f| f.per_s);
    json(
        StatusCode::OK,
        serde_json::json!({"depth": queue_depth(shared), "per_s": per_s}),
    )
}

async fn admin_queue(State(shared): State<Arc<Shared>>) -> Response {
    queue_response(&shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_grows_with_the_depth_and_is_bounded() {
        assert_eq!(queue_wait(0), Duration::ZERO);
        assert_eq!(queue_wait(5), QUEUE_ITEM_WAIT * 5);
        assert_eq!(queue_wait(u64::MAX), MAX_QUEUE_WAIT);
    }

    #[test]
    fn the_backlog_grows_at_its_rate_keeps_it_on_a_new_rate_and_is_capped() {
        let t0 = Instant::now();
        let f = QueueFault {
            since: t0,
            per_s: 100,
            base: 7,
        };
        assert_eq!(f.backlog(t0), 7);
        assert_eq!(f.backlog(t0 + Duration::from_millis(2500)), 257);
        let capped = QueueFault {
            per_s: MAX_QUEUE_PER_S,
            ..f
        };
        assert_eq!(
            capped.backlog(t0 + Duration::from_secs(1_000_000)),
            MAX_QUEUE_DEPTH
        );
    }

    #[test]
    fn the_normal_depth_is_noisy_within_its_band() {
        let q = Queue::new();
        let seen: std::collections::BTreeSet<u64> = (0..200).map(|_| q.depth()).collect();
        let lo = NORMAL_QUEUE_DEPTH - QUEUE_NOISE;
        let hi = NORMAL_QUEUE_DEPTH + QUEUE_NOISE;
        assert!(seen.iter().all(|d| (lo..=hi).contains(d)), "{seen:?}");
        assert!(seen.len() >= 3, "no noise: {seen:?}");
    }
}
