//! The web console at `/ui/`: server-rendered (askama), assets embedded
//! (rust-embed), one small script for the live incident list (SSE).
//!
//! It goes through the same paths as the JSON API: reads from the store and
//! [`crate::governance::Query`], operator commands through
//! [`crate::operate`] with the [`Actor`] of the session, built by the same
//! request checks (`governance::pause_command`, ...). The session is the
//! API token in an `HttpOnly`, `SameSite=Strict` cookie; every form carries a
//! CSRF token derived from it (`sha256("medic-csrf:" + token)`), checked on
//! every POST. With `auth: none` everyone is `anonymous`/admin and the CSRF
//! token derives from a per-process random secret.
//!
//! Before there is a session, the login form is protected by a double-submit
//! token: `GET /ui/login` sets a random `medic_login_csrf` cookie
//! (`HttpOnly`, `SameSite=Strict`, `Path=/ui/login`) and puts the same value
//! in the form; `POST /ui/login` needs both, equal. Every console POST
//! (login, logout, action) is also refused when its `Origin` (or, without
//! one, its `Referer`) names another host than the one it was sent to, so a
//! page of another site cannot log a browser in as the attacker, log it out,
//! or act with its session. Refusals are `403` with `E0480`
//! (`csrf_token_invalid`) or `E0481` (`cross_origin_refused`): an HTML page,
//! or the JSON error when the client asks for JSON. Bearer-token calls to
//! `/api/v1` carry no cookie and are not concerned.
pub mod chart;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use medic_core::{Actor, OperatorCommand, Role};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::{actor_for_token, anonymous, Auth};
use crate::error::ErrorCode;
use crate::governance::{
    self, ApprovalEntry, DecisionEntry, HypothesisEntry, PauseEntry, QueryAnswer,
};
use crate::{ApiError, ApiState, IncidentDetail, IncidentSummary};
use chart::Sample;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "medic_session";
/// Name of the login form's double-submit CSRF cookie.
pub const LOGIN_CSRF_COOKIE: &str = "medic_login_csrf";
/// How long a login form stays usable, in seconds.
const LOGIN_CSRF_MAX_AGE: u32 = 3600;
/// Probe runs kept per (service, probe) for the incident chart.
pub const HISTORY_SAMPLES: usize = 900;
/// Samples kept over all probes together (about 24 MB): with many probes each
/// keeps fewer ([`HISTORY_SAMPLES`] down to [`MIN_HISTORY_SAMPLES`]), so the
/// console's memory does not grow with the number of targets.
pub const TOTAL_HISTORY_SAMPLES: usize = 1_000_000;
/// The fewest samples a probe keeps however many probes there are.
pub const MIN_HISTORY_SAMPLES: usize = 16;
/// Incidents (and recorded changes) on the console's lists.
const LIST_LIMIT: u32 = 50;
/// Recorded changes shown on an incident's page (its service's newest).
const INCIDENT_CHANGES: usize = 10;
/// Live (SSE) streams served at once; more get `503` (the browser retries).
pub const MAX_LIVE_STREAMS: usize = 32;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Assets;

/// A signal rule as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    pub name: String,
    pub service: String,
    pub source: String,
    /// `threshold`, or `detector NAME`.
    pub check: String,
}

/// What the console knows beside the API state: configured services and
/// rules, the database path (for the audit chain check), noisy-rule mutes
/// and a bounded history of probe runs. Shared with the daemon, which feeds
/// mutes and samples.
#[derive(Debug)]
pub struct Console {
    pub services: Vec<String>,
    pub rules: Vec<RuleRow>,
    /// The store whose audit chain the console verifies (SQLite or Postgres).
    pub db: Option<medic_store::StoreTarget>,
    muted: Mutex<BTreeMap<String, String>>,
    history: Mutex<History>,
    csrf_secret: String,
    live_streams: std::sync::atomic::AtomicUsize,
}

/// Recent runs by service, then probe (looked up by `&str`: recording a
/// sample allocates only for a probe's first one), and how many probes.
#[derive(Debug, Default)]
struct History {
    /// Hashed, not ordered: looked up on every probe report (at 10,000
    /// services an ordered map's string comparisons were a visible share
    /// of medic's CPU), never walked in order.
    by_service: HashMap<String, BTreeMap<String, VecDeque<Sample>>>,
    probes: usize,
}

/// One of the [`MAX_LIVE_STREAMS`] slots, given back when the stream ends.
struct LiveSlot(Arc<Console>);

impl LiveSlot {
    fn take(console: &Arc<Console>) -> Option<LiveSlot> {
        let n = console.live_streams.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_LIVE_STREAMS {
            console.live_streams.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(LiveSlot(console.clone()))
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        self.0.live_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Console {
    pub fn new(
        services: Vec<String>,
        rules: Vec<RuleRow>,
        db: Option<medic_store::StoreTarget>,
    ) -> Console {
        Console {
            services,
            rules,
            db,
            muted: Mutex::new(BTreeMap::new()),
            history: Mutex::new(History::default()),
            // A failing OS random source leaves an empty secret, which only
            // matters under `auth: none` (no authentication at all anyway).
            csrf_secret: medic_store::tokens::random_secret().unwrap_or_default(),
            live_streams: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// One probe run of a configured probe (bounded: [`HISTORY_SAMPLES`] per
    /// probe and [`TOTAL_HISTORY_SAMPLES`] over all of them).
    pub fn record_sample(&self, service: &str, probe: &str, ok: bool, latency: Duration) {
        let unix_ms = unix_ms_now();
        let mut guard = lock(&self.history);
        let h = &mut *guard;
        // One look-up per map.
        let by_probe = match h.by_service.get_mut(service) {
            Some(m) => m,
            None => h.by_service.entry(service.to_string()).or_default(),
        };
        let q = match by_probe.get_mut(probe) {
            Some(q) => q,
            None => {
                h.probes += 1;
                by_probe.entry(probe.to_string()).or_default()
            }
        };
        let cap =
            (TOTAL_HISTORY_SAMPLES / h.probes.max(1)).clamp(MIN_HISTORY_SAMPLES, HISTORY_SAMPLES);
        while q.len() >= cap {
            q.pop_front();
        }
        q.push_back(Sample {
            unix_ms,
            latency_ms: latency.as_secs_f64() * 1000.0,
            ok,
        });
    }

    /// A noisy rule muted until `until` (RFC 3339), or unmuted (`None`).
    pub fn set_muted(&self, rule: &str, until: Option<String>) {
        let mut m = lock(&self.muted);
        match until {
            Some(u) => {
                m.insert(rule.to_string(), u);
            }
            None => {
                m.remove(rule);
            }
        }
    }

    fn samples(&self, service: &str, probe: &str) -> Vec<Sample> {
        lock(&self.history)
            .by_service
            .get(service)
            .and_then(|m| m.get(probe))
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn parse_unix_ms(rfc3339: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[derive(Clone)]
struct UiState {
    api: ApiState,
    console: Arc<Console>,
}

/// The console's routes (`/ui/...`), to merge into the API router.
pub fn router(api: ApiState, console: Arc<Console>) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/incidents/{id}", get(incident_page))
        .route("/ui/changes", get(changes_page))
        .route("/ui/events", get(events))
        .route("/ui/action", post(action))
        .route("/ui/assets/{file}", get(asset))
        .with_state(UiState { api, console })
}

// ---------------------------------------------------------------- session

struct Session {
    actor: Actor,
    csrf: String,
}

fn csrf_for(secret: &str) -> String {
    hex::encode(Sha256::digest(format!("medic-csrf:{secret}").as_bytes()))
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

async fn session(st: &UiState, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
    match st.api.auth {
        Auth::None => Ok(Some(Session {
            actor: anonymous(),
            csrf: csrf_for(&st.console.csrf_secret),
        })),
        Auth::Tokens => {
            let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
                return Ok(None);
            };
            Ok(actor_for_token(&st.api, token).await?.map(|actor| Session {
                actor,
                csrf: csrf_for(token),
            }))
        }
    }
}

fn error_page(status: StatusCode, message: &str) -> Response {
    error_html(status, None, message)
}

fn error_html(status: StatusCode, code: Option<String>, message: &str) -> Response {
    let page = ErrorPage {
        code,
        message: message.to_string(),
    };
    (
        status,
        Html(page.render().unwrap_or_else(|e| e.to_string())),
    )
        .into_response()
}

/// A refused console request: the JSON error when the client asks for JSON
/// (and not HTML), otherwise the error page naming the code.
fn refusal(headers: &HeaderMap, e: ApiError) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("application/json") && !accept.contains("text/html") {
        return e.into_response();
    }
    let code = format!("{} {}", e.code.code(), e.code.name());
    error_html(e.code.status(), Some(code), &e.message)
}

/// Equal strings, compared in time that does not depend on where they
/// differ (only on their length).
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `host[:port]` of an `Origin` or `Referer` URL (`None` for `null` or
/// anything that is not an http(s) URL).
fn url_authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Drop any `user:password@`.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    (!authority.is_empty()).then_some(authority)
}

/// Checks that a cookie-authenticated POST comes from the console's own
/// pages: its `Origin` (or, without one, its `Referer`) names the `Host` the
/// request was sent to, or the `X-Forwarded-Host` a proxy in front set (a
/// page of another site cannot set either header on a form post). A
/// request with neither `Origin` nor `Referer` is not a browser's form post
/// (every current browser sends `Origin` on a POST) and passes here; its
/// CSRF token is still checked.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (what, from) = match (text("origin"), text("referer")) {
        (Some(o), _) => ("Origin", o),
        (None, Some(r)) => ("Referer", r),
        (None, None) => return Ok(()),
    };
    let authority = url_authority(from.trim());
    let ours = [text("host"), text("x-forwarded-host")];
    let ok = authority.is_some_and(|a| {
        ours.iter()
            .flatten()
            .any(|h| h.trim().eq_ignore_ascii_case(a))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::CrossOriginRefused,
            format!(
                "refused a console form posted from another site ({what}: {from:?}); \
                 use the console's own pages"
            ),
        ))
    }
}

fn csrf_invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::CsrfTokenInvalid, message)
}

fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

// ---------------------------------------------------------------- templates

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    /// `E0480 csrf_token_invalid`, when the refusal has an API code.
    code: Option<String>,
    message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    flash: Option<String>,
    /// The double-submit token, also in the [`LOGIN_CSRF_COOKIE`] cookie.
    csrf: String,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsFragment {
    incidents: Vec<IncidentSummary>,
}

struct ServiceRow {
    name: String,
    mode: String,
    paused: Option<PauseEntry>,
    autoheal_disabled: bool,
}

struct RuleView {
    rule: RuleRow,
    muted_until: Option<String>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    who: String,
    role: &'static str,
    can: Can,
    auth_on: bool,
    csrf: String,
    flash: Option<String>,
    mode: String,
    modes: Vec<&'static str>,
    kill: Option<PauseEntry>,
    mass: bool,
    services: Vec<ServiceRow>,
    other_pauses: Vec<PauseEntry>,
    approvals: Vec<ApprovalEntry>,
    incidents_html: String,
    audit: String,
    audit_ok: bool,
    rules: Vec<RuleView>,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    who: String,
    role: &'static str,
    can: Can,
    auth_on: bool,
    csrf: String,
    detail: IncidentDetail,
    phase: Option<String>,
    decisions: Vec<DecisionEntry>,
    pending: Option<ApprovalEntry>,
    /// The ranked root-cause hypotheses with their confidence parts (issue
    /// 9), while the engine remembers the incident.
    hypotheses: Vec<HypothesisEntry>,
    chart: Option<String>,
    probe: String,
    /// The incident's service's recent changes, newest first.
    changes: Vec<crate::changes::ChangeView>,
}

#[derive(Template)]
#[template(path = "changes.html")]
struct ChangesPage {
    who: String,
    role: &'static str,
    auth_on: bool,
    csrf: String,
    /// Only this service's changes.
    service: Option<String>,
    /// The configured services, for the filter links.
    services: Vec<String>,
    changes: Vec<crate::changes::ChangeView>,
    limit: u32,
}

/// What the session's role may do, for showing the controls.
#[derive(Debug, Clone, Copy)]
struct Can {
    operate: bool,
    approve: bool,
    admin: bool,
}

impl Can {
    fn of(role: Role) -> Can {
        Can {
            operate: role >= Role::Operator,
            approve: role >= Role::Approver,
            admin: role >= Role::Admin,
        }
    }
}

// ---------------------------------------------------------------- handlers

#[derive(Deserialize)]
struct FlashQuery {
    flash: Option<String>,
}

/// `GET /ui/login`: the form, with a fresh double-submit token in a hidden
/// field and in the [`LOGIN_CSRF_COOKIE`] cookie.
async fn login_page(Query(q): Query<FlashQuery>) -> Response {
    let csrf = match medic_store::tokens::random_secret() {
        Ok(s) => s,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut resp = render(&LoginPage {
        flash: q.flash,
        csrf: csrf.clone(),
    });
    resp.headers_mut().append(
        header::SET_COOKIE,
        login_csrf_cookie(&csrf, LOGIN_CSRF_MAX_AGE),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    csrf: String,
}

fn login_csrf_cookie(value: &str, max_age: u32) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{LOGIN_CSRF_COOKIE}={value}; Path=/ui/login; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("medic_login_csrf=; Path=/ui/login"))
}

fn session_cookie(value: &str, max_age: Option<u32>) -> HeaderValue {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("medic_session=; Path=/ui"))
}

async fn login(
    State(st): State<UiState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(e) = same_origin(&headers) {
        return refusal(&headers, e);
    }
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !same_secret(expected, f.csrf.trim()) {
        return refusal(
            &headers,
            csrf_invalid("the login form's CSRF token is missing or does not match its cookie: reload the login page"),
        );
    }
    let token = f.token.trim();
    let valid = !token.is_empty()
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && matches!(actor_for_token(&st.api, token).await, Ok(Some(_)));
    if !valid {
        return Redirect::to("/ui/login?flash=unknown+or+revoked+token").into_response();
    }
    let mut resp = Redirect::to("/ui/").into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, session_cookie(token, None));
    // The login form's token is spent.
    h.append(header::SET_COOKIE, login_csrf_cookie("", 0));
    resp
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: ends the session; with a session, only from the
/// console's own form (its CSRF token).
async fn logout(
    State(st): State<UiState>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    if let Err(e) = same_origin(&headers) {
        return refusal(&headers, e);
    }
    match session(&st, &headers).await {
        Ok(Some(s)) if !same_secret(&s.csrf, f.csrf.trim()) => {
            return refusal(
                &headers,
                csrf_invalid("invalid CSRF token: reload the page"),
            )
        }
        // No session (or none that can be checked): nothing to protect.
        _ => {}
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", Some(0)));
    resp
}

async fn incidents_html(st: &UiState) -> Result<String, ApiError> {
    let incidents = st
        .api
        .store
        .list_incidents(LIST_LIMIT)
        .await?
        .into_iter()
        .map(IncidentSummary::from)
        .collect();
    IncidentsFragment { incidents }
        .render()
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn audit_status(console: &Console) -> (String, bool) {
    let Some(db) = &console.db else {
        return ("not checked (no database path)".into(), true);
    };
    match medic_store::verify_audit_target(db).await {
        Ok(r) => match r.first_bad {
            None => (format!("chain ok: {} records", r.records), true),
            Some(bad) => (
                format!(
                    "BROKEN at seq {}: {} ({} records)",
                    bad.seq, bad.reason, r.records
                ),
                false,
            ),
        },
        Err(e) => (format!("could not verify: {e}"), false),
    }
}

async fn index(
    State(st): State<UiState>,
    headers: HeaderMap,
    Query(q): Query<FlashQuery>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Redirect::to("/ui/login").into_response(),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    match index_page(&st, s, q.flash).await {
        Ok(p) => render(&p),
        Err(e) => error_page(e.code.status(), &e.message),
    }
}

async fn index_page(
    st: &UiState,
    s: Session,
    flash: Option<String>,
) -> Result<IndexPage, ApiError> {
    let (mode, statuses) = match crate::query(&st.api, governance::Query::Status).await? {
        QueryAnswer::Status { mode, services } => (mode, services),
        _ => return Err(ApiError::internal("unexpected answer")),
    };
    let (approvals, pauses, mass) =
        match crate::query(&st.api, governance::Query::Approvals).await? {
            QueryAnswer::Approvals {
                approvals,
                pauses,
                mass_paused,
                clock,
            } => (
                approvals
                    .iter()
                    .map(|a| governance::approval_entry(a, &clock))
                    .collect::<Vec<_>>(),
                pauses
                    .iter()
                    .map(|p| governance::pause_entry(p, &clock))
                    .collect::<Vec<_>>(),
                mass_paused,
            ),
            _ => return Err(ApiError::internal("unexpected answer")),
        };
    let kill = pauses
        .iter()
        .find(|p| p.service.is_none() && p.kind.is_none())
        .cloned();
    let services = statuses
        .iter()
        .map(|svc| ServiceRow {
            name: svc.name.clone(),
            mode: svc.mode.unwrap_or(mode).as_str().to_string(),
            paused: pauses
                .iter()
                .find(|p| p.service.as_deref() == Some(svc.name.as_str()) && p.kind.is_none())
                .cloned(),
            autoheal_disabled: svc.autoheal_disabled,
        })
        .collect();
    let other_pauses = pauses
        .iter()
        .filter(|p| p.kind.is_some())
        .cloned()
        .collect();
    let muted = lock(&st.console.muted).clone();
    let rules = st
        .console
        .rules
        .iter()
        .map(|r| RuleView {
            muted_until: muted.get(&r.name).cloned(),
            rule: r.clone(),
        })
        .collect();
    let (audit, audit_ok) = audit_status(&st.console).await;
    Ok(IndexPage {
        who: s.actor.id.clone(),
        role: s.actor.role.as_str(),
        can: Can::of(s.actor.role),
        auth_on: st.api.auth == Auth::Tokens,
        csrf: s.csrf,
        flash,
        mode: mode.as_str().to_string(),
        modes: vec!["disabled", "dry-run", "conservative", "aggressive"],
        kill,
        mass,
        services,
        other_pauses,
        approvals,
        incidents_html: incidents_html(st).await?,
        audit,
        audit_ok,
        rules,
    })
}

async fn incident_page(
    State(st): State<UiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Redirect::to("/ui/login").into_response(),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    let rec = match st.api.store.get_incident(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, &format!("no incident {id:?}")),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    // Past incidents like this one and what worked (a store error leaves
    // the list empty, not the page).
    let similar = st
        .api
        .store
        .similar_incidents(&rec, 5)
        .await
        .unwrap_or_default();
    let mut detail = IncidentDetail::from(rec);
    detail.similar = similar.iter().map(crate::SimilarIncident::from).collect();
    let (phase, decisions, pending, hypotheses) = match crate::query(
        &st.api,
        governance::Query::Explain {
            incident: id.clone(),
        },
    )
    .await
    {
        Ok(QueryAnswer::Explain {
            explanation: Some(e),
            clock,
        }) => {
            let r = governance::explain_response(&e, &clock);
            (Some(r.phase), r.decisions, r.pending_approval, r.hypotheses)
        }
        _ => (None, Vec::new(), None, Vec::new()),
    };
    let probe = detail
        .incident
        .trigger
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string();
    let chart = parse_unix_ms(&detail.incident.opened_at).and_then(|open| {
        let close = detail
            .incident
            .closed_at
            .as_deref()
            .and_then(parse_unix_ms)
            .unwrap_or_else(unix_ms_now);
        let samples = st.console.samples(&detail.incident.service, &probe);
        chart::svg(&samples, open - 60_000, close + 60_000, open, close)
    });
    let changes = match crate::changes::recent(
        &st.api.store,
        Some(&detail.incident.service),
        INCIDENT_CHANGES,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    render(&IncidentPage {
        who: s.actor.id.clone(),
        role: s.actor.role.as_str(),
        can: Can::of(s.actor.role),
        auth_on: st.api.auth == Auth::Tokens,
        csrf: s.csrf,
        detail,
        phase,
        decisions,
        pending,
        hypotheses,
        chart,
        probe,
        changes,
    })
}

#[derive(Deserialize)]
struct ChangesQuery {
    service: Option<String>,
}

/// `GET /ui/changes[?service=S]`: the recorded changes (the audit's
/// `change.recorded` records), newest first, at most [`LIST_LIMIT`].
async fn changes_page(
    State(st): State<UiState>,
    headers: HeaderMap,
    Query(q): Query<ChangesQuery>,
) -> Response {
    let s = match session(&st, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return Redirect::to("/ui/login").into_response(),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    let service = q
        .service
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let limit = usize::try_from(LIST_LIMIT).unwrap_or(usize::MAX);
    let changes = match crate::changes::recent(&st.api.store, service.as_deref(), limit).await {
        Ok(c) => c,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    render(&ChangesPage {
        who: s.actor.id.clone(),
        role: s.actor.role.as_str(),
        auth_on: st.api.auth == Auth::Tokens,
        csrf: s.csrf,
        service,
        services: st.console.services.clone(),
        changes,
        limit: LIST_LIMIT,
    })
}

/// `GET /ui/events`: the incident list as an HTML fragment, pushed as an
/// `incidents` event whenever it changes (checked every second). The stream
/// ends when medic stops being ready (shutdown); the browser reconnects. At
/// most [`MAX_LIVE_STREAMS`] at once.
async fn events(State(st): State<UiState>, headers: HeaderMap) -> Response {
    match session(&st, &headers).await {
        Ok(Some(_)) => {}
        Ok(None) => return error_page(StatusCode::UNAUTHORIZED, "log in first"),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    }
    let Some(slot) = LiveSlot::take(&st.console) else {
        let mut r = error_page(StatusCode::SERVICE_UNAVAILABLE, "too many live streams");
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let stream = futures_util::stream::unfold(
        (st, String::new(), true, slot),
        |(st, last, first, slot)| async move {
            let mut first = first;
            loop {
                if !first {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                first = false;
                if !st.api.ready.load(Ordering::SeqCst) {
                    return None;
                }
                let Ok(html) = incidents_html(&st).await else {
                    continue;
                };
                if html != last {
                    let ev = Event::default().event("incidents").data(html.clone());
                    return Some((Ok::<Event, Infallible>(ev), (st, html, false, slot)));
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    op: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    back: String,
}

fn nonempty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn command(f: &ActionForm) -> Result<OperatorCommand, ApiError> {
    Ok(match f.op.as_str() {
        "approve" => OperatorCommand::Approve {
            id: governance::required("id", &f.id)?,
        },
        "reject" => OperatorCommand::Reject {
            id: governance::required("id", &f.id)?,
            reason: nonempty(&f.reason).unwrap_or_else(|| "rejected in the web console".into()),
        },
        "pause" => governance::pause_command(&governance::PauseRequest {
            service: nonempty(&f.service),
            kind: None,
            duration_s: None,
            reason: Some(nonempty(&f.reason).unwrap_or_else(|| "paused in the web console".into())),
        })?,
        "resume" => governance::resume_command(&governance::ResumeRequest {
            service: nonempty(&f.service),
            kind: None,
        })?,
        "autoheal" => OperatorCommand::EnableAutoheal {
            service: governance::required("service", &f.service)?,
        },
        "mode" => OperatorCommand::SetMode {
            service: nonempty(&f.service),
            mode: f
                .mode
                .trim()
                .parse()
                .map_err(|e: medic_core::ParseModeError| {
                    ApiError::invalid_field("mode", e.to_string())
                })?,
        },
        other => {
            return Err(ApiError::invalid_field(
                "op",
                format!("unknown operation {other:?}"),
            ))
        }
    })
}

/// `POST /ui/action`: one operator command from a console form, then back
/// to the page it came from with the answer as a flash message.
async fn action(
    State(st): State<UiState>,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Err(e) = same_origin(&headers) {
        return refusal(&headers, e);
    }
    let s = match session(&st, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return error_page(StatusCode::UNAUTHORIZED, "log in first"),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    if !same_secret(&s.csrf, f.csrf.trim()) {
        return refusal(
            &headers,
            csrf_invalid("invalid CSRF token: reload the page"),
        );
    }
    let back = if f.back.starts_with("/ui/") && !f.back.contains("//") && !f.back.contains('?') {
        f.back.clone()
    } else {
        "/ui/".to_string()
    };
    let flash = match command(&f) {
        Err(e) => e.message,
        Ok(cmd) if s.actor.role < cmd.required_role() => {
            crate::auth::forbidden(&s.actor, cmd.required_role(), cmd.name()).message
        }
        Ok(cmd) => match crate::operate(&st.api, s.actor.clone(), cmd).await {
            Ok(axum::Json(r)) => r.message,
            Err(e) => e.message,
        },
    };
    let q = [("flash", flash)];
    let qs = serde_urlencoded::to_string(q).unwrap_or_default();
    Redirect::to(&format!("{back}?{qs}")).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match Assets::get(&file) {
        Some(f) => {
            let ct = if file.ends_with(".css") {
                "text/css; charset=utf-8"
            } else if file.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "application/octet-stream"
            };
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CACHE_CONTROL, "max-age=300"),
                ],
                Body::from(f.data.into_owned()),
            )
                .into_response()
        }
        None => error_page(StatusCode::NOT_FOUND, "no such asset"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_incident_page_names_the_merged_services() {
        let rec = medic_store::IncidentRecord {
            id: "inc-1".into(),
            service: "db".into(),
            state: "resolved".into(),
            trigger: "work slow".into(),
            opened_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            closed_at: None,
            outcome: None,
            summary: "slow".into(),
            timeline: Vec::new(),
            merged: Vec::new(),
            diagnosis: None,
        };
        let page = |merged: Vec<String>| {
            let mut rec = rec.clone();
            rec.merged = merged;
            IncidentPage {
                who: "alice".into(),
                role: "viewer",
                can: Can::of(Role::Viewer),
                auth_on: true,
                csrf: String::new(),
                detail: IncidentDetail::from(rec),
                phase: None,
                decisions: Vec::new(),
                pending: None,
                hypotheses: governance::hypothesis_entries(
                    &[
                        medic_core::Hypothesis {
                            service: "db".into(),
                            signal: "latency".into(),
                            pattern: "dependency_slow".into(),
                            confidence: 81,
                            prior: 0.9,
                            evidence: 1.0,
                            learned: 0.9,
                            victims: vec!["api".into(), "web".into()],
                            evidence_text: "latency z 40 <b>".into(),
                        },
                        medic_core::Hypothesis {
                            service: "api".into(),
                            signal: "latency".into(),
                            pattern: "dependency_slow".into(),
                            confidence: 20,
                            prior: 0.9,
                            evidence: 0.25,
                            learned: 0.9,
                            victims: Vec::new(),
                            evidence_text: String::new(),
                        },
                    ],
                    &medic_core::AutonomyBands::default(),
                ),
                chart: None,
                probe: "work".into(),
                changes: Vec::new(),
            }
            .render()
            .unwrap()
        };
        let html = page(vec!["api".into(), "web".into()]);
        // The ranked hypotheses with their parts and why not taken, escaped.
        assert!(
            html.contains("<tr class=\"hypothesis\"><td>1</td><td>db</td>"),
            "{html}"
        );
        assert!(html.contains("81 = 100 · 0.90 · 1.00 · 0.90"), "{html}");
        assert!(
            html.contains("latency z 40 &#60;b&#62;") || html.contains("latency z 40 &lt;b&gt;"),
            "{html}"
        );
        assert!(html.contains("a victim of db"), "{html}");
        assert!(
            html.contains(
                "<p id=\"merged\">merged into this incident (victims of db): <strong>api, web</strong></p>"
            ),
            "{html}"
        );
        assert!(!page(Vec::new()).contains("id=\"merged\""));
    }

    #[test]
    fn probe_history_shrinks_per_probe_as_probes_grow() {
        let c = Console::new(Vec::new(), Vec::new(), None);
        let ms = Duration::from_millis(1);
        for _ in 0..HISTORY_SAMPLES + 50 {
            c.record_sample("a", "h", true, ms);
        }
        assert_eq!(c.samples("a", "h").len(), HISTORY_SAMPLES);
        // 4,000 probes: each keeps at most 1,000,000 / 4,000 = 250.
        for k in 0..3_999 {
            c.record_sample(&format!("s{k}"), "h", true, ms);
        }
        c.record_sample("a", "h", true, ms);
        assert_eq!(c.samples("a", "h").len(), 250);
        let total: usize = lock(&c.history)
            .by_service
            .values()
            .flat_map(BTreeMap::values)
            .map(VecDeque::len)
            .sum();
        assert_eq!(lock(&c.history).probes, 4_000);
        assert!(total <= TOTAL_HISTORY_SAMPLES, "{total}");
    }

    #[test]
    fn the_changes_page_escapes_every_recorded_text() {
        let change = crate::changes::ChangeView {
            service: "db&x".into(),
            kind: "deploy".into(),
            version: Some("<v2>".into()),
            note: Some("<script>alert(1)</script>".into()),
            by: "c\"i".into(),
            at: "2026-01-01T00:00:00Z".into(),
        };
        let html = ChangesPage {
            who: "alice".into(),
            role: "viewer",
            auth_on: true,
            csrf: String::new(),
            service: Some("db&x".into()),
            services: vec!["db&x".into()],
            changes: vec![change],
            limit: LIST_LIMIT,
        }
        .render()
        .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&#60;v2&#62;") || html.contains("&lt;v2&gt;"),
            "{html}"
        );
        assert!(html.contains("/ui/changes?service=db%26x"), "{html}");
        assert!(!html.contains("c\"i"), "{html}");
        let empty = ChangesPage {
            who: "alice".into(),
            role: "viewer",
            auth_on: true,
            csrf: String::new(),
            service: None,
            services: Vec::new(),
            changes: Vec::new(),
            limit: LIST_LIMIT,
        }
        .render()
        .unwrap();
        assert!(empty.contains("no changes recorded"), "{empty}");
    }
}
