//! The console's file pages: the report archive (listed for everyone, downloaded by
//! reviewers, each download a chained row) and the rules in force with `explain`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::{blocking, error_page, html, to_login, App};
use crate::console::pages;
use crate::policy::{Client, RuleSet};
use crate::store::Role;
use crate::Error;

/// The largest report file served.
const MAX_REPORT: u64 = 256 << 20;

/// A report's file name: a letter or digit, then letters, digits, `.`, `_`, `-`.
fn report_name_ok(name: &str) -> bool {
    name.len() <= 200
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

pub(super) async fn reports(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some((_, s)) = app.session(&headers).await else {
        return to_login();
    };
    let nav = app.nav(&s, "reports");
    let dir = app.reports.clone();
    let tz = app.tz.clone();
    let listed = blocking(move || {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Io { path: dir, source }),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || !report_name_ok(&name) {
                continue;
            }
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            out.push((modified, name, meta.len()));
        }
        out.sort_by(|a, b| b.cmp(a));
        Ok(out
            .into_iter()
            .map(|(m, name, len)| pages::ReportFile {
                name,
                size: pages::size(len),
                modified: pages::local_time(m, &tz),
            })
            .collect::<Vec<_>>())
    })
    .await;
    match listed {
        Ok(rows) => html(
            StatusCode::OK,
            &pages::Reports {
                title: "Reports",
                dir: app.reports.display().to_string(),
                rows,
                can_download: s.role >= Role::Reviewer,
                nav: Some(nav),
            },
        ),
        Err(e) => error_page(StatusCode::SERVICE_UNAVAILABLE, Some(nav), &e.to_string()),
    }
}

pub(super) async fn download(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let Some((_, s)) = app.session(&headers).await else {
        return to_login();
    };
    let nav = app.nav(&s, "reports");
    if s.role < Role::Reviewer {
        return error_page(
            StatusCode::FORBIDDEN,
            Some(nav),
            "A viewer cannot download reports.",
        );
    }
    if !report_name_ok(&name) {
        return error_page(StatusCode::NOT_FOUND, Some(nav), "No such report.");
    }
    let path = app.reports.join(&name);
    let read = blocking(move || {
        // Not through a link: the file itself, a regular one.
        let meta = std::fs::symlink_metadata(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() || meta.len() > MAX_REPORT {
            return Err(Error::Usage("not a report file".into()));
        }
        std::fs::read(&path).map_err(|source| Error::Io { path, source })
    })
    .await;
    let Ok(bytes) = read else {
        return error_page(StatusCode::NOT_FOUND, Some(nav), "No such report.");
    };
    if app
        .record("report_download", s.user.clone(), name.clone())
        .await
        .is_err()
    {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(nav),
            "The download could not be recorded in the incident store, so it is refused.",
        );
    }
    let kind = match name.rsplit('.').next() {
        Some("pdf") => "application/pdf",
        Some("html") => "text/html; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // An HTML report opened from here runs nothing with the console's origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        ),
    );
    resp
}

#[derive(serde::Deserialize)]
pub(super) struct RulesQuery {
    #[serde(default)]
    host: String,
}

/// The entries of a site list, comments and blank lines left out, at most `max`.
fn site_lines(path: &std::path::Path, max: usize) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .take(max)
        .map(|(i, l)| (i, l.to_string()))
        .collect()
}

pub(super) async fn rules(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<RulesQuery>,
) -> Response {
    let Some((_, s)) = app.session(&headers).await else {
        return to_login();
    };
    let nav = app.nav(&s, "rules");
    let host: String = q.host.trim().chars().take(253).collect();
    let (dirs, mode, h) = (app.rules.clone(), app.mode, host.clone());
    let loaded = blocking(move || {
        let rules = RuleSet::load(&dirs)?;
        let explanation = (!h.is_empty()).then(|| {
            rules
                .explain(&h, &Client::new(None, None, None), mode)
                .to_string()
        });
        let enum_str = |v: Option<serde_json::Value>| {
            v.and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "-".into())
        };
        let mut services: Vec<pages::ServiceLine> = rules
            .services()
            .map(|s| pages::ServiceLine {
                id: s.id.to_string(),
                name: s.name.to_string(),
                category: s.category.clone(),
                baa: enum_str(s.baa.and_then(|b| serde_json::to_value(b).ok())),
                trains: enum_str(s.trains_on_data.and_then(|t| serde_json::to_value(t).ok())),
                residency: s.data_residency.clone().unwrap_or_else(|| "-".into()),
            })
            .collect();
        services.sort_by_key(|a| a.name.to_lowercase());
        Ok((
            explanation,
            services,
            site_lines(&dirs.site.join("allow.list"), 2000),
            site_lines(&dirs.site.join("deny.list"), 2000),
        ))
    })
    .await;
    match loaded {
        Ok((explanation, services, allow, deny)) => html(
            StatusCode::OK,
            &pages::Rules {
                title: "Rules",
                mode: app.mode.as_str(),
                host,
                explanation,
                services,
                allow,
                deny,
                nav: Some(nav),
            },
        ),
        Err(e) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(nav),
            &format!("The rules cannot be read: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names() {
        assert!(report_name_ok("2026-W48.pdf") && report_name_ok("a_b-c.json"));
        assert!(!report_name_ok("../x") && !report_name_ok(".x") && !report_name_ok("a/b"));
    }
}
