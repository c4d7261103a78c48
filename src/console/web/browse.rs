//! The console's reading pages and its one write: this week's dashboard, the incidents list
//! (filters, keyset pages) and acknowledging incidents from it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::{
    blocking, error_page, field, fields, html, store_failed, to_login, token_ok, App, PAGE_ROWS,
};
use crate::console::pages;
use crate::store::{now_micros, AckStatus, PageFilter, Role};

/// Incidents one page looks at, at most, for ones its filters pass (about 20 ms): a
/// filter few pass never walks the whole store; the page then offers to look further.
const SCAN_ROWS: u32 = 20_000;

#[derive(serde::Deserialize)]
pub(super) struct WeekQuery {
    #[serde(default)]
    weeks_ago: u32,
}

/// The Monday `weeks_ago` weeks before the one `now` falls in, in `tz`.
fn monday(now: Timestamp, tz: &TimeZone, weeks_ago: u32) -> Option<Date> {
    let today = now.to_zoned_datetime(tz.clone()).date();
    let w = today.iso_week_date();
    let first = jiff::civil::ISOWeekDate::new(w.year(), w.week(), Weekday::Monday)
        .ok()?
        .date();
    first.checked_sub((7 * i64::from(weeks_ago)).days()).ok()
}

/// Unix microseconds of the start of `date` in `tz`.
fn day_start(date: Date, tz: &TimeZone) -> Option<i64> {
    date.to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp().as_microsecond())
}

pub(super) async fn dashboard(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<WeekQuery>,
) -> Response {
    let Some((_, s)) = app.session(&headers).await else {
        return to_login();
    };
    let nav = app.nav(&s, "dashboard");
    let weeks_ago = q.weeks_ago.min(520);
    let Some(first) = monday(Timestamp::now(), &app.tz, weeks_ago) else {
        return error_page(StatusCode::BAD_REQUEST, Some(nav), "No such week.");
    };
    let days: Vec<Date> = (0..=7)
        .filter_map(|i| first.checked_add(i.days()).ok())
        .collect();
    let bounds: Vec<i64> = days.iter().filter_map(|d| day_start(*d, &app.tz)).collect();
    if bounds.len() != 8 {
        return error_page(StatusCode::BAD_REQUEST, Some(nav), "No such week.");
    }
    let got = {
        let (app, b) = (app.clone(), bounds.clone());
        blocking(move || {
            app.db
                .read(|st| Ok((st.tally(b[0], b[7], 10)?, st.counts_between(&b)?)))
        })
        .await
    };
    let (t, counts) = match got {
        Ok(v) => v,
        Err(e) => return store_failed(Some(nav), &e),
    };
    let addresses = app.addresses(&s);
    let w = first.iso_week_date();
    let last = days[6];
    let page = pages::Dashboard {
        title: "Dashboard",
        week: format!("Week {}-W{:02}", w.year(), w.week()),
        range: format!(
            "{} – {}",
            first.strftime("%a %-d %b %Y"),
            last.strftime("%a %-d %b %Y")
        ),
        zone: app.tz.iana_name().unwrap_or("UTC").to_string(),
        weeks_ago,
        from: first.to_string(),
        to: last.to_string(),
        days: days
            .iter()
            .zip(&counts)
            .map(|(d, n)| pages::Day {
                label: d.strftime("%a %-d").to_string(),
                count: *n,
            })
            .collect(),
        day_max: counts.iter().copied().max().unwrap_or(0).max(1),
        services: t
            .top_services
            .iter()
            .map(|x| pages::TopService {
                id: x.service.clone(),
                name: x.name.clone(),
                incidents: x.incidents,
                blocked: x.blocked,
            })
            .collect(),
        devices: t
            .top_devices
            .iter()
            .map(|d| pages::top_device(d, addresses))
            .collect(),
        t,
        nav: Some(nav),
    };
    html(StatusCode::OK, &page)
}

/// The filter a query asks for, or why it is malformed.
fn filter_of(
    app: &App,
    q: &pages::Query,
    addresses: bool,
) -> Result<(PageFilter, Option<(i64, i64)>), String> {
    let date = |s: &str, what: &str| -> Result<Option<Date>, String> {
        if s.is_empty() {
            return Ok(None);
        }
        s.parse::<Date>()
            .map(Some)
            .map_err(|_| format!("{what} {s:?} is not a date (YYYY-MM-DD)"))
    };
    let since = match date(&q.from, "from")? {
        Some(d) => Some(day_start(d, &app.tz).ok_or("from: no such day")?),
        None => None,
    };
    let until = match date(&q.to, "to")? {
        Some(d) => {
            let next = d.tomorrow().map_err(|_| "to: no such day".to_string())?;
            Some(day_start(next, &app.tz).ok_or("to: no such day")?)
        }
        None => None,
    };
    let status = match q.status.as_str() {
        "" => None,
        "open" => Some(AckStatus::Open),
        "acknowledged" => Some(AckStatus::Acknowledged),
        other => return Err(format!("status {other:?}: open or acknowledged")),
    };
    let before = if q.before.is_empty() {
        None
    } else {
        let (t, i) = q.before.split_once('.').ok_or("before: ts.id")?;
        Some((
            t.parse().map_err(|_| "before: ts.id")?,
            i.parse().map_err(|_| "before: ts.id")?,
        ))
    };
    let text = |s: &str| {
        let s = s.trim();
        (!s.is_empty()).then(|| s.chars().take(253).collect::<String>())
    };
    Ok((
        PageFilter {
            since,
            until,
            device: text(&q.device),
            names_only: !addresses,
            service: text(&q.service),
            status,
        },
        before,
    ))
}

fn query_string(q: &pages::Query) -> String {
    serde_urlencoded::to_string(q).unwrap_or_default()
}

pub(super) async fn incidents(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<pages::Query>,
) -> Response {
    let Some((_, s)) = app.session(&headers).await else {
        return to_login();
    };
    let nav = app.nav(&s, "incidents");
    let addresses = app.addresses(&s);
    let (filter, before) = match filter_of(&app, &q, addresses) {
        Ok(f) => f,
        Err(m) => return error_page(StatusCode::BAD_REQUEST, Some(nav), &m),
    };
    let got = {
        let app = app.clone();
        blocking(move || {
            app.db
                .read(|st| st.page_within(&filter, before, PAGE_ROWS, SCAN_ROWS))
        })
        .await
    };
    let (rows, more) = match got {
        Ok(p) => (p.rows, p.next),
        Err(e) => return store_failed(Some(nav), &e),
    };
    let base = pages::Query {
        before: String::new(),
        acked: String::new(),
        ..q.clone()
    };
    let next = more.map(|(ts, id)| {
        let q = pages::Query {
            before: format!("{ts}.{id}"),
            ..base.clone()
        };
        format!("/incidents?{}", query_string(&q))
    });
    // A short page with more to come: the walk stopped at its bound.
    let searched = (rows.len() < PAGE_ROWS as usize)
        .then_some(more)
        .flatten()
        .map(|(ts, _)| {
            format!(
                "{} matching in the {SCAN_ROWS} incidents looked at (back to {}); older ones may match too.",
                rows.len(),
                pages::local_time(ts, &app.tz)
            )
        });
    let first = (!q.before.is_empty()).then(|| format!("/incidents?{}", query_string(&base)));
    let flash = q.acked.parse::<u32>().ok().map(|n| {
        format!(
            "Acknowledged {n} incident{}.",
            if n == 1 { "" } else { "s" }
        )
    });
    let page = pages::Incidents {
        title: "Incidents",
        csrf: s.csrf.clone(),
        services: app.services.clone(),
        rows: rows
            .iter()
            .map(|r| pages::row(r, &app.tz, addresses))
            .collect(),
        can_ack: s.role >= Role::Reviewer,
        show_addresses: addresses,
        back: query_string(&pages::Query {
            acked: String::new(),
            ..q.clone()
        }),
        flash,
        searched,
        first,
        next,
        q,
        nav: Some(nav),
    };
    html(StatusCode::OK, &page)
}

pub(super) async fn acknowledge(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((_, s)) = app.session(&headers).await else {
        return error_page(StatusCode::FORBIDDEN, None, "Sign in first.");
    };
    let f = fields(&body);
    let nav = app.nav(&s, "incidents");
    if !token_ok(&s, &f) {
        return error_page(
            StatusCode::FORBIDDEN,
            Some(nav),
            "Missing or wrong form token.",
        );
    }
    if s.role < Role::Reviewer {
        return error_page(
            StatusCode::FORBIDDEN,
            Some(nav),
            "A viewer cannot acknowledge incidents.",
        );
    }
    let ids: Result<Vec<i64>, _> = f
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.parse::<i64>())
        .collect();
    let Ok(ids) = ids else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(nav),
            "An incident id is not a number.",
        );
    };
    if ids.is_empty() || ids.len() > crate::store::MAX_PAGE as usize {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(nav),
            "Select one or more incidents.",
        );
    }
    let note = field(&f, "note").unwrap_or("").trim().to_string();
    if note.is_empty() || note.chars().count() > 1000 {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(nav),
            "Say what was done in the note (at most 1000 characters).",
        );
    }
    let back: pages::Query =
        serde_urlencoded::from_str(field(&f, "back").unwrap_or("")).unwrap_or_default();
    let n = ids.len();
    let done = {
        let (app, user) = (app.clone(), s.user.clone());
        blocking(move || {
            app.db
                .write(|st| st.ack_many(&ids, now_micros(), &user, &note))
        })
        .await
    };
    if let Err(e) = done {
        return store_failed(Some(nav), &e);
    }
    tracing::info!(user = %s.user, incidents = n, "console: acknowledged");
    let q = pages::Query {
        acked: n.to_string(),
        ..back
    };
    Redirect::to(&format!("/incidents?{}", query_string(&q))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_in_the_zone() {
        let tz = TimeZone::get("America/New_York").expect("tz");
        // Monday 2026-11-23 03:00 UTC is still Sunday evening in New York.
        let t: Timestamp = "2026-11-23T03:00:00Z".parse().expect("ts");
        assert_eq!(
            monday(t, &tz, 0).map(|d| d.to_string()),
            Some("2026-11-16".into())
        );
        assert_eq!(
            monday(t, &TimeZone::UTC, 0).map(|d| d.to_string()),
            Some("2026-11-23".into())
        );
        assert_eq!(
            monday(t, &TimeZone::UTC, 2).map(|d| d.to_string()),
            Some("2026-11-09".into())
        );
        let d: Date = "2026-11-16".parse().expect("date");
        assert_eq!(
            day_start(d, &tz),
            Some(
                Timestamp::from_second(1_794_805_200)
                    .expect("ts")
                    .as_microsecond()
            )
        );
    }
}
