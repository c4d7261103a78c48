//! The console's HTTP side: the routes, their handlers, and what every request goes through
//! first (security headers; for a POST, a same-origin check and then the form's CSRF token).
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /login`, `POST /login` | anyone | the login form (its own token, in a cookie and the form) |
//! | `POST /logout` | a session | ends it |
//! | `GET /` | viewer | this week's dashboard (`?weeks_ago=N`) |
//! | `GET /incidents` | viewer | filters, keyset pages (`before=ts.id`) |
//! | `POST /incidents/ack` | reviewer | acknowledge the selected incidents with a note |
//! | `GET /reports`, `GET /reports/{name}` | viewer lists, reviewer downloads | the archive |
//! | `GET /rules` | viewer | the catalog and site lists; `?host=` explains a host |
//!
//! Every login, failed login, logout, acknowledgement and download is a chained row.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use jiff::tz::TimeZone;

use super::auth::{self, LoginLimiter, Session, Sessions};
use super::db::Db;
use super::pages::{self, Nav};
use browse::{acknowledge, dashboard, incidents};
use files::{download, reports, rules};

mod browse;
mod files;
use crate::config;
use crate::metrics::Metrics;
use crate::policy::{Mode, RuleDirs};
use crate::store::{now_micros, Role};
use crate::Error;

/// The session cookie. `__Host-`: the browser takes it only over HTTPS, for this host and
/// path `/`, never set by a sibling domain.
pub(super) const SESSION_COOKIE: &str = "__Host-aiwarden";
/// The login form's token, before there is a session.
pub(super) const LOGIN_COOKIE: &str = "__Host-aiwarden-login";
/// Rows on an incidents page.
pub(super) const PAGE_ROWS: u32 = 50;
/// The largest request body taken (a form of 500 ids and a note fits many times over).
pub(super) const MAX_BODY: usize = 64 * 1024;
/// How often a session's account is read again.
const ACCOUNT_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// The client's address, put on each request by the connection that carries it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientAddr(pub(super) SocketAddr);

/// What every handler shares.
#[derive(Debug)]
pub(super) struct App {
    pub(super) cfg: config::Console,
    pub(super) rules: RuleDirs,
    pub(super) mode: Mode,
    pub(super) db: Db,
    pub(super) reports: PathBuf,
    pub(super) tz: TimeZone,
    pub(super) sessions: Mutex<Sessions>,
    pub(super) limiter: Mutex<LoginLimiter>,
    pub(super) metrics: Arc<Metrics>,
    /// `(id, name)` of the catalog's services, by name, for the incidents filter.
    pub(super) services: Vec<(String, String)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The routes, with the security layer in front of them.
pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/incidents", get(incidents))
        .route("/incidents/ack", post(acknowledge))
        .route("/reports", get(reports))
        .route("/reports/{name}", get(download))
        .route("/rules", get(rules))
        .route("/static/console.css", get(css))
        .route("/static/icon.svg", get(icon))
        .fallback(not_found)
        .layer(middleware::from_fn(guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Security headers on every response; a POST from another origin (or from nowhere a
/// browser names) is refused before any handler sees it.
async fn guard(req: Request, next: Next) -> Response {
    let refuse = req.method() == Method::POST && !same_origin(req.headers());
    let mut resp = if refuse {
        error_page(
            StatusCode::FORBIDDEN,
            None,
            "This request did not come from a console page (Origin or Referer missing or another site's).",
        )
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        if !h.contains_key(&k) {
            h.insert(k, HeaderValue::from_static(v));
        }
    };
    // No script at all; styles from the console's own stylesheet only.
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: with `no-referrer` a browser sends `Origin: null`
    // on the console's own form posts, which the same-origin check must then refuse. No
    // console URL is ever sent to another site either way.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CACHE_CONTROL, "no-store");
    resp
}

/// The request names this console as its origin: `Origin` is `https://<Host>`, or with no
/// `Origin`, `Referer` is a URL under it.
fn same_origin(h: &HeaderMap) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let me = format!("https://{host}");
    match h.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        Some(origin) => origin == me,
        None => h
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|r| r == me || r.starts_with(&format!("{me}/"))),
    }
}

/// The value of cookie `name`.
fn cookie<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; Secure; SameSite=Strict; Path=/{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// The fields of a form body (`a=1&a=2&b=x`), in order.
fn fields(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn field<'a>(f: &'a [(String, String)], name: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "page error").into_response()
        }
    }
}

fn error_page(status: StatusCode, nav: Option<Nav>, message: &str) -> Response {
    html(
        status,
        &pages::ErrorPage {
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            nav,
            message: message.to_string(),
        },
    )
}

/// A store failure as a page: the console stays up and says what is wrong.
fn store_failed(nav: Option<Nav>, e: &Error) -> Response {
    tracing::error!(error = %e, "console: store");
    match e {
        Error::NoSuchIncident(_) | Error::Usage(_) => {
            error_page(StatusCode::BAD_REQUEST, nav, &e.to_string())
        }
        _ => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            nav,
            &format!("The incident store cannot be read or written: {e}"),
        ),
    }
}

/// Runs blocking store or file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Console(format!("a worker failed: {e}"))))
}

impl App {
    /// The session the request's cookie names, if it is still in force. Once a minute its
    /// account is read again: removed, disabled or given another role, the session ends.
    async fn session(self: &Arc<Self>, h: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(h, SESSION_COOKIE)?.to_string();
        let now = Instant::now();
        let s = lock(&self.sessions).get(&id, now)?;
        if now.saturating_duration_since(s.checked) < ACCOUNT_RECHECK {
            return Some((id, s));
        }
        let (app, name) = (self.clone(), s.user.clone());
        let account = blocking(move || app.db.read(|st| st.user(&name))).await;
        match account {
            Ok(Some(a)) if !a.disabled && a.role == s.role => {
                lock(&self.sessions).checked(&id, now);
                Some((id, s))
            }
            // A store that cannot be read keeps the session: every page says so anyway.
            Err(_) => Some((id, s)),
            Ok(_) => {
                lock(&self.sessions).remove(&id);
                None
            }
        }
    }

    fn nav(&self, s: &Session, page: &'static str) -> Nav {
        Nav {
            user: s.user.clone(),
            role: s.role,
            csrf: s.csrf.clone(),
            page,
        }
    }

    /// Whether `s` sees client addresses and MACs.
    fn addresses(&self, s: &Session) -> bool {
        s.role >= Role::Reviewer || self.cfg.show_addresses_to_viewers
    }

    /// Appends an event row; a failure is logged and returned.
    async fn record(
        self: &Arc<Self>,
        event: &'static str,
        actor: String,
        detail: String,
    ) -> crate::Result<i64> {
        let app = self.clone();
        let r = blocking(move || {
            app.db
                .write(|s| s.record_event(now_micros(), event, &actor, &detail))
        })
        .await;
        if let Err(e) = &r {
            tracing::error!(error = %e, event, "console: cannot record an event row");
        }
        r
    }
}

/// A session's POST: its token must be the form's `csrf`.
fn token_ok(s: &Session, f: &[(String, String)]) -> bool {
    field(f, "csrf").is_some_and(|t| auth::same(t, &s.csrf))
}

fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// What cannot be shown to a user typing it back: at most 64 characters, no controls.
fn clip(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.is_empty() {
        "(empty)".into()
    } else {
        s
    }
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../templates/console/console.css"),
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("../../../templates/console/icon.svg"),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, None, "There is no such page.")
}

async fn login_form(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if app.session(&headers).await.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, String::new(), None)
}

fn login_page(status: StatusCode, user: String, message: Option<String>) -> Response {
    let token = auth::random_hex(32);
    let mut resp = html(
        status,
        &pages::Login {
            title: "Sign in",
            nav: None,
            csrf: token.clone(),
            user,
            message,
        },
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, Some(3600)),
    );
    resp
}

async fn login(
    State(app): State<Arc<App>>,
    Extension(ClientAddr(peer)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    let token_ok = match (cookie(&headers, LOGIN_COOKIE), field(&f, "csrf")) {
        (Some(c), Some(t)) => auth::same(c, t),
        _ => false,
    };
    if !token_ok {
        return error_page(
            StatusCode::FORBIDDEN,
            None,
            "The login form's token is missing or wrong: open the login page again.",
        );
    }
    let user = field(&f, "user").unwrap_or("").trim().to_string();
    let password = field(&f, "password").unwrap_or("").to_string();
    // IPv4 through an IPv6 socket counts as the IPv4 address it is.
    let ip: IpAddr = peer.ip().to_canonical();
    let now = Instant::now();
    let wait = lock(&app.limiter).check(&user, ip, now);
    if let Some(wait) = wait {
        app.metrics
            .console_logins
            .with_label_values(&["limited"])
            .inc();
        tracing::warn!(client = %ip, "console: login refused: too many failures");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut resp = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            user,
            Some(format!(
                "Too many failed logins. Try again in {} minutes.",
                secs.div_ceil(60)
            )),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let account = {
        let (app, name) = (app.clone(), user.clone());
        blocking(move || app.db.read(|s| s.user(&name))).await
    };
    let account = match account {
        Ok(a) => a,
        Err(e) => return store_failed(None, &e),
    };
    let checked = {
        let hash = account
            .as_ref()
            .filter(|a| !a.disabled)
            .map(|a| a.password_hash.clone());
        blocking(move || {
            // An unknown or disabled name costs what a real one does.
            let ok =
                auth::verify_password(&password, hash.as_deref().unwrap_or(auth::decoy_hash()));
            Ok(ok && hash.is_some())
        })
        .await
        .unwrap_or(false)
    };
    let Some(account) = account.filter(|_| checked) else {
        lock(&app.limiter).failed(&user, ip, Instant::now());
        app.metrics
            .console_logins
            .with_label_values(&["failed"])
            .inc();
        tracing::warn!(client = %ip, "console: failed login");
        let _ = app
            .record("login_failed", clip(&user), ip.to_string())
            .await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            user,
            Some("Wrong user name or password.".into()),
        );
    };
    if app
        .record("login", account.name.clone(), ip.to_string())
        .await
        .is_err()
    {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "The login could not be recorded in the incident store, so it is refused.",
        );
    }
    lock(&app.limiter).succeeded(&account.name);
    app.metrics.console_logins.with_label_values(&["ok"]).inc();
    let (id, _) = lock(&app.sessions).create(&account.name, account.role, Instant::now());
    tracing::info!(user = %account.name, client = %ip, "console: login");
    let mut resp = Redirect::to("/").into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &id, None));
    h.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", Some(0)));
    resp
}

async fn logout(
    State(app): State<Arc<App>>,
    Extension(ClientAddr(peer)): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((id, s)) = app.session(&headers).await else {
        return to_login();
    };
    if !token_ok(&s, &fields(&body)) {
        return error_page(
            StatusCode::FORBIDDEN,
            Some(app.nav(&s, "")),
            "Missing or wrong form token.",
        );
    }
    lock(&app.sessions).remove(&id);
    let _ = app
        .record("logout", s.user.clone(), peer.ip().to_string())
        .await;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert!(!same_origin(&h), "neither Origin nor Referer");
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://127.0.0.1:8443/incidents"),
        );
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h), "Origin wins, and null is nobody");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443.evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert(
            header::REFERER,
            HeaderValue::from_static("https://127.0.0.1:8443.evil.example/"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-aiwarden=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
        assert_eq!(clip("a\nb"), "ab");
        assert_eq!(clip(""), "(empty)");
    }
}
