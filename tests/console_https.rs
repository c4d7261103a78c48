//! The web console over real HTTPS on 127.0.0.1, as `aiwarden console` serves it: security
//! headers and cookie attributes, CSRF refusals (no token, a wrong one, another origin),
//! roles (a viewer cannot acknowledge or download and sees no addresses), login rate
//! limiting, session expiry and logout, keyset pages, report downloads recorded in the
//! chain, and hostile names shown as text.

#[path = "support/console.rs"]
mod console;
#[path = "support/https.rs"]
mod https;

use console::{incident, now_s, Running, PASSWORD};
use https::{Client, Resp};

fn client(c: &Running) -> Client {
    Client::new(c.addr, &c.cert())
}

/// The value of the first `name="csrf"` input in a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

/// Logs `user` in with `password`: the login form's response and the session cookie.
fn login(c: &Client, user: &str, password: &str) -> (Resp, Option<String>) {
    let form = c.get("/login", None);
    assert_eq!(form.status, 200);
    let token = form.cookie("__Host-aiwarden-login").expect("login cookie");
    assert_eq!(
        csrf(&form.text()),
        token,
        "the form carries the cookie's token"
    );
    let body = format!(
        "csrf={token}&user={}&password={}",
        user,
        password.replace(' ', "+")
    );
    let cookie = format!("__Host-aiwarden-login={token}");
    let origin = c.origin();
    let r = c.send(
        "POST",
        "/login",
        &[("Cookie", &cookie), ("Origin", &origin)],
        &body,
    );
    let session = r.cookie("__Host-aiwarden").filter(|s| !s.is_empty());
    (r, session)
}

fn session(c: &Client, user: &str) -> String {
    let (r, s) = login(c, user, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    s.expect("a session cookie")
}

fn post(c: &Client, path: &str, session: &str, origin: Option<&str>, body: &str) -> Resp {
    let cookie = format!("__Host-aiwarden={session}");
    let mut h = vec![("Cookie", cookie.as_str())];
    if let Some(o) = origin {
        h.push(("Origin", o));
    }
    c.send("POST", path, &h, body)
}

fn seeded(extra: &str) -> Running {
    let t = now_s() - 3600;
    Running::start(extra, &[("rita", "reviewer"), ("vic", "viewer")], |s| {
        let mut incs = Vec::new();
        for i in 0..120i64 {
            let n = (i % 4) as u8 + 1;
            let label = (n == 1).then_some("Front desk");
            let service = if i % 3 == 0 { "claude" } else { "chatgpt" };
            incs.push(incident(t - 120 + i, n, label, service, i % 5 == 0));
        }
        let mut hostile = incident(t, 9, None, "gemini", true);
        hostile.device = Some("<script>alert('pwned')</script>".into());
        hostile.host = "x.example\"><img src=x onerror=alert(1)>".into();
        incs.push(hostile);
        s.append_incidents(&incs).expect("seed");
    })
}

#[test]
fn headers_cookies_and_a_login() {
    let c = seeded("");
    let cl = client(&c);
    let r = cl.get("/login", None);
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").expect("csp");
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let lc = r.set_cookie("__Host-aiwarden-login").expect("login cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(lc.contains(attr), "{lc}");
    }
    assert_eq!(
        cl.get("/", None).header("location"),
        Some("/login"),
        "no session"
    );

    let (r, s) = login(&cl, "rita", PASSWORD);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));
    let sc = r.set_cookie("__Host-aiwarden").expect("session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(sc.contains(attr), "{sc}");
    }
    let s = s.expect("session");
    assert_eq!(s.len(), 64, "256 random bits as hex");
    let home = cl.get("/", Some(&s));
    assert_eq!(home.status, 200);
    let text = home.text();
    assert!(text.contains("id=\"f-incidents\">121<"), "{text}");
    assert!(
        cl.get("/", Some(&"0".repeat(64))).status == 303,
        "a made-up id is nobody"
    );
    let events = c.read().events(0, i64::MAX).expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.event == "login" && e.actor == "rita" && e.detail == "127.0.0.1"),
        "{events:?}"
    );
}

#[test]
fn posts_without_the_token_or_from_elsewhere_are_refused() {
    let c = seeded("");
    let cl = client(&c);
    let s = session(&cl, "rita");
    let page = cl.get("/incidents", Some(&s)).text();
    let token = csrf(&page);
    let origin = cl.origin();
    let ack = |t: Option<&str>, o: Option<&str>| {
        let body = match t {
            Some(t) => format!("csrf={t}&ids=5&ids=6&note=trained"),
            None => "ids=5&ids=6&note=trained".to_string(),
        };
        post(&cl, "/incidents/ack", &s, o, &body)
    };
    assert_eq!(ack(None, Some(&origin)).status, 403, "no token");
    let wrong = "f".repeat(64);
    assert_eq!(
        ack(Some(&wrong), Some(&origin)).status,
        403,
        "a wrong token"
    );
    assert_eq!(
        ack(Some(&token[..63]), Some(&origin)).status,
        403,
        "a short token"
    );
    assert_eq!(
        ack(Some(&token), Some("https://evil.example")).status,
        403,
        "another origin"
    );
    assert_eq!(
        ack(Some(&token), Some("null")).status,
        403,
        "an opaque origin"
    );
    assert_eq!(
        ack(Some(&token), None).status,
        403,
        "neither Origin nor Referer"
    );
    assert!(
        c.read().row_counts().expect("counts").acks_by.is_empty(),
        "nothing refused was written"
    );
    // The login form wants its own token too.
    let r = cl.send(
        "POST",
        "/login",
        &[("Origin", &origin)],
        &format!("user=rita&password={}", PASSWORD.replace(' ', "+")),
    );
    assert_eq!(r.status, 403);
    assert!(r.cookie("__Host-aiwarden").is_none());

    let r = ack(Some(&token), Some(&origin));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/incidents?device=&service=&status=&from=&to=&acked=2")
    );
    let store = c.read();
    for id in [5, 6] {
        let row = store.get(id).expect("get").expect("incident");
        assert_eq!(
            row.acks
                .iter()
                .map(|a| (a.by.as_str(), a.note.as_str()))
                .collect::<Vec<_>>(),
            [("rita", "trained")]
        );
    }
    assert!(store.verify().expect("verify").is_intact());
    // With a Referer instead of an Origin (an older browser) it is accepted too.
    let referer = format!("{origin}/incidents");
    let cookie = format!("__Host-aiwarden={s}");
    let r = cl.send(
        "POST",
        "/incidents/ack",
        &[("Cookie", &cookie), ("Referer", &referer)],
        &format!("csrf={token}&ids=7&note=ok"),
    );
    assert_eq!(r.status, 303);
}

#[test]
fn a_viewer_reads_without_addresses_and_cannot_acknowledge_or_download() {
    let c = seeded("");
    std::fs::create_dir_all(c.reports()).expect("reports");
    std::fs::write(c.reports().join("2026-W48.pdf"), b"%PDF-1.7 test").expect("report");
    let cl = client(&c);
    let s = session(&cl, "vic");
    let page = cl.get("/incidents", Some(&s)).text();
    assert!(
        page.contains("Front desk") && page.contains("pc-2"),
        "names are shown"
    );
    assert!(
        !page.contains("10.0.0.") && !page.contains("52:54:00"),
        "no address or MAC"
    );
    assert!(!page.contains("type=\"checkbox\"") && !page.contains("id=\"acknowledge\""));
    let token = csrf(&page);
    let r = post(
        &cl,
        "/incidents/ack",
        &s,
        Some(&cl.origin()),
        &format!("csrf={token}&ids=1&note=forged"),
    );
    assert_eq!(r.status, 403);
    assert!(r.text().contains("A viewer cannot acknowledge"));
    assert!(c.read().get(1).expect("get").expect("row").acks.is_empty());
    // Finding a device by its address is not a way round it either.
    let found = cl.get("/incidents?device=10.0.0.2", Some(&s)).text();
    assert!(found.contains("No incidents match"), "{found}");
    let reports = cl.get("/reports", Some(&s)).text();
    assert!(
        reports.contains("2026-W48.pdf") && !reports.contains("href=\"/reports/2026-W48.pdf\"")
    );
    assert_eq!(cl.get("/reports/2026-W48.pdf", Some(&s)).status, 403);
    // Configured to, viewers see addresses.
    let c2 = seeded("show_addresses_to_viewers = true");
    let cl2 = client(&c2);
    let s2 = session(&cl2, "vic");
    assert!(cl2
        .get("/incidents", Some(&s2))
        .text()
        .contains("10.0.0.2 52:54:00:00:00:02"));
}

#[test]
fn wrong_passwords_are_rate_limited() {
    let c = seeded("login_failures = 5\nlogin_window_secs = 900");
    let cl = client(&c);
    for i in 0..5 {
        let (r, s) = login(&cl, "rita", "wrong password");
        assert_eq!(r.status, 401, "attempt {i}");
        assert!(s.is_none());
        assert!(r.text().contains("Wrong user name or password"));
    }
    let (r, s) = login(&cl, "rita", PASSWORD);
    assert_eq!(r.status, 429, "the right password too, once limited");
    assert!(s.is_none());
    let after: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!((890..=900).contains(&after), "{after}");
    let (r, _) = login(&cl, "vic", PASSWORD);
    assert_eq!(r.status, 429, "the address is limited too");
    let events = c.read().events(0, i64::MAX).expect("events");
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.event == "login_failed")
        .collect();
    assert_eq!(
        failed.len(),
        5,
        "refused attempts write no rows: {events:?}"
    );
    assert!(failed
        .iter()
        .all(|e| e.actor == "rita" && e.detail == "127.0.0.1"));
    // Unknown names fail the same way (and are counted).
    let c = seeded("");
    let cl = client(&c);
    let (r, _) = login(&cl, "nobody", PASSWORD);
    assert_eq!(r.status, 401);
}

#[test]
fn sessions_end_when_idle_and_at_logout() {
    let c = seeded("session_idle_secs = 1\nsession_max_secs = 60");
    let cl = client(&c);
    let s = session(&cl, "rita");
    assert_eq!(cl.get("/", Some(&s)).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(1300));
    assert_eq!(
        cl.get("/", Some(&s)).header("location"),
        Some("/login"),
        "idle expiry"
    );

    let c = seeded("");
    let cl = client(&c);
    let s = session(&cl, "rita");
    let token = csrf(&cl.get("/", Some(&s)).text());
    let r = post(
        &cl,
        "/logout",
        &s,
        Some(&cl.origin()),
        &format!("csrf={token}"),
    );
    assert_eq!(r.status, 303);
    let cleared = r.set_cookie("__Host-aiwarden").expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        cl.get("/", Some(&s)).status,
        303,
        "the old cookie is nobody now"
    );
    let events = c.read().events(0, i64::MAX).expect("events");
    assert!(events
        .iter()
        .any(|e| e.event == "logout" && e.actor == "rita"));
    // A removed account's session ends at its next check.
    let out = c.run(&["user", "remove", "vic"]);
    assert!(out.status.success(), "{out:?}");
    let (r, _) = login(&cl, "vic", PASSWORD);
    assert_eq!(r.status, 401);
}

#[test]
fn pages_walk_the_incidents_and_names_stay_text() {
    let c = seeded("");
    let cl = client(&c);
    let s = session(&cl, "rita");
    let first = cl.get("/incidents", Some(&s)).text();
    let rows = |p: &str| p.matches("<tr id=\"row-").count();
    assert_eq!(rows(&first), 50);
    assert!(first.contains("<tr id=\"row-121\""), "newest first");
    assert!(!first.contains("<script>alert"), "hostile names are text");
    assert!(
        first.contains("&#60;script&#62;alert(&#39;pwned&#39;)&#60;/script&#62;"),
        "{first}"
    );
    assert!(!first.contains("<img src=x"));
    let mut seen = rows(&first);
    let mut page = first;
    let mut pages = 1;
    while let Some(at) = page.find("id=\"older\"") {
        let href_at = page[..at].rfind("href=\"").expect("href") + 6;
        let href = page[href_at..]
            .split('"')
            .next()
            .expect("href")
            .replace("&#38;", "&")
            .replace("&amp;", "&");
        page = cl.get(&href, Some(&s)).text();
        seen += rows(&page);
        pages += 1;
        assert!(pages <= 3, "{href}: {page}");
    }
    assert_eq!((seen, pages), (121, 3), "every incident once");
    let filtered = cl
        .get(
            "/incidents?device=front+desk&service=claude&status=open",
            Some(&s),
        )
        .text();
    assert_eq!(rows(&filtered), 10, "{filtered}");
    assert_eq!(cl.get("/incidents?status=nonsense", Some(&s)).status, 400);
    assert_eq!(cl.get("/incidents?from=2026-13-01", Some(&s)).status, 400);
}

#[test]
fn reports_download_once_recorded_and_only_from_the_archive() {
    let c = seeded("");
    std::fs::create_dir_all(c.reports()).expect("reports");
    std::fs::write(c.reports().join("2026-W48.html"), b"<h1>week</h1>").expect("report");
    std::os::unix::fs::symlink(&c.store, c.reports().join("link.db")).expect("symlink");
    let cl = client(&c);
    let s = session(&cl, "rita");
    let list = cl.get("/reports", Some(&s)).text();
    assert!(list.contains("href=\"/reports/2026-W48.html\""), "{list}");
    assert!(!list.contains("link.db"), "links are not listed");
    let r = cl.get("/reports/2026-W48.html", Some(&s));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>week</h1>");
    assert!(r
        .header("content-disposition")
        .expect("disposition")
        .starts_with("attachment"));
    assert!(r
        .header("content-security-policy")
        .expect("csp")
        .starts_with("sandbox"));
    for bad in [
        "/reports/link.db",
        "/reports/..%2Fincidents.db",
        "/reports/.hidden",
        "/reports/none.pdf",
    ] {
        assert_eq!(cl.get(bad, Some(&s)).status, 404, "{bad}");
    }
    let events = c.read().events(0, i64::MAX).expect("events");
    let downloads: Vec<_> = events
        .iter()
        .filter(|e| e.event == "report_download")
        .collect();
    assert_eq!(downloads.len(), 1);
    assert_eq!(
        (downloads[0].actor.as_str(), downloads[0].detail.as_str()),
        ("rita", "2026-W48.html")
    );
    let rules = cl.get("/rules?host=chatgpt.com", Some(&s)).text();
    assert!(rules.contains("id=\"explanation\""), "{rules}");
    assert!(rules.contains("chatgpt.com"));
}
