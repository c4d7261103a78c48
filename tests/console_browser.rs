//! The web console in real headless Chromium (Debian's chromium and chromium-driver): a
//! reviewer logs in, filters incidents, acknowledges two and sees them acknowledged, and
//! `aiwarden verify` then shows the acknowledgements in the chain; a viewer gets no
//! acknowledge control and a forged POST from their session is refused; wrong passwords
//! are rate limited. No page logs an error (a CSP violation would). Screenshots go to
//! `target/test-artifacts/console/`; with `AIWARDEN_UPDATE_DOCS=1` the dashboard and the
//! incident list are also copied to `docs/`.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/console.rs"]
mod console;

use browser::Browser;
use console::{incident, now_s, Running, PASSWORD};

/// A week of plausible incidents in the current week (UTC, as the console is told).
fn seed(s: &mut aiwarden::store::Store) {
    let now = now_s();
    let today = jiff::Timestamp::from_second(now)
        .expect("now")
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let w = today.iso_week_date();
    let monday = jiff::civil::ISOWeekDate::new(w.year(), w.week(), jiff::civil::Weekday::Monday)
        .expect("monday")
        .date()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .expect("zoned")
        .timestamp()
        .as_second();
    let span = (now - monday - 60).max(60);
    let devices: [(u8, Option<&str>); 6] = [
        (11, Some("Front desk PC 1")),
        (12, Some("Front desk PC 2")),
        (21, Some("Dr. Patel laptop")),
        (22, Some("Exam room 3")),
        (31, Some("Billing office")),
        (41, None),
    ];
    let services = [
        ("chatgpt", "ChatGPT", true),
        ("claude", "Claude", false),
        ("gemini", "Gemini", true),
        ("perplexity", "Perplexity", false),
        ("deepseek", "DeepSeek", true),
    ];
    let mut incs = Vec::new();
    for i in 0..48i64 {
        let (n, label) = devices[(i * 7 % 6) as usize];
        let (id, name, block) = services[(i * 3 % 5) as usize];
        let mut inc = incident(monday + span * i / 48, n, label, id, block && i % 2 == 0);
        inc.service_name = name.into();
        inc.host = match id {
            "chatgpt" => "chatgpt.com",
            "claude" => "claude.ai",
            "gemini" => "gemini.google.com",
            "perplexity" => "www.perplexity.ai",
            _ => "chat.deepseek.com",
        }
        .into();
        incs.push(inc);
    }
    s.append_incidents(&incs).expect("seed");
    s.ack(
        3,
        monday * 1_000_000 + 1,
        "dr.lee",
        "discussed at the staff meeting",
    )
    .expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_acknowledges_a_viewer_cannot_and_guessing_is_limited() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let c = Running::start(
        "login_failures = 5",
        &[("rita", "reviewer"), ("vic", "viewer")],
        seed,
    );
    let url = c.url();

    // A reviewer logs in and lands on this week's dashboard.
    b.goto(&format!("{url}/login")).await;
    b.screenshot("console/login.png").await;
    b.fill("#name", "rita").await;
    b.fill("#password", PASSWORD).await;
    b.click_to("#login", "/").await;
    assert_eq!(b.text("#f-incidents").await, "48");
    assert_eq!(b.text("#user").await, "rita (reviewer)");
    let dashboard = b.screenshot("console/dashboard.png").await;

    // Filters the incidents: one device's open ones.
    b.click_to("nav a[href='/incidents']", "/incidents").await;
    b.fill("#f-device", "Front desk PC 1").await;
    b.select("#f-status", "open").await;
    b.click_to("#filter", "/incidents").await;
    let u = b.url().await;
    assert!(u.query().is_some_and(|q| q.contains("status=open")), "{u}");
    let rows = b.count("table#incidents tr[id^='row-']").await;
    assert!(rows >= 4, "{rows} rows");
    assert!(b.count("tr.acknowledged").await == 0, "only open ones");
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for e in b
            .client
            .find_all(fantoccini::Locator::Css("input[name='ids']"))
            .await
            .expect("checkboxes")
            .into_iter()
            .take(2)
        {
            v.push(e.attr("value").await.expect("attr").expect("value"));
        }
        v
    };
    assert_eq!(ids.len(), 2);
    b.screenshot("console/incidents-filtered.png").await;

    // Acknowledges two, with a note, and sees them acknowledged.
    for id in &ids {
        b.click(&format!("#ack-{id}")).await;
    }
    b.fill("#note", "trained on the clinic's AI policy").await;
    b.click_to("#acknowledge", "/incidents").await;
    assert_eq!(b.text("#flash").await, "Acknowledged 2 incidents.");
    assert_eq!(
        b.count("table#incidents tr[id^='row-']").await,
        rows - 2,
        "the open list lost them"
    );
    b.fill("#f-device", "").await;
    b.select("#f-status", "").await;
    b.click_to("#filter", "/incidents").await;
    for id in &ids {
        let status = b.text(&format!("#row-{id} td.status")).await;
        assert!(
            status.starts_with("acknowledged by rita on ")
                && status.ends_with(": trained on the clinic's AI policy"),
            "{status}"
        );
    }
    let incidents = b.screenshot("console/incidents.png").await;
    let errors = b.console_errors().await;
    assert!(
        errors.is_empty(),
        "the reviewer's pages logged errors: {errors:?}"
    );
    b.goto(&format!("{url}/rules?host=chatgpt.com")).await;
    assert!(b.text("#explanation").await.contains("chatgpt.com"));
    b.screenshot("console/rules.png").await;
    b.click_to("#logout", "/login").await;

    // aiwarden verify shows the acknowledgements in the chain.
    let out = c.run(&["verify"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("acks by: dr.lee 1, rita 2"), "{said}");
    assert!(
        said.contains("login 1") && said.contains("logout 1"),
        "{said}"
    );
    let store = c.read();
    for id in &ids {
        let row = store
            .get(id.parse().expect("id"))
            .expect("get")
            .expect("incident");
        assert_eq!(row.acks.len(), 1);
        assert_eq!(row.acks[0].by, "rita");
    }

    // A viewer sees no acknowledge control, and a forged POST from their session is refused.
    b.fill("#name", "vic").await;
    b.fill("#password", PASSWORD).await;
    b.click_to("#login", "/").await;
    b.goto(&format!("{url}/incidents")).await;
    assert_eq!(b.count("input[type='checkbox']").await, 0);
    assert_eq!(b.count("#acknowledge").await, 0);
    let html = b.source().await;
    assert!(
        !html.contains("10.0.0.") && !html.contains("52:54:00"),
        "no addresses"
    );
    b.screenshot("console/incidents-viewer.png").await;
    // The page's CSP forbids fetch(); a forged form is what a malicious page would post.
    let token = b
        .client
        .find(fantoccini::Locator::Css("input[name='csrf']"))
        .await
        .expect("csrf")
        .attr("value")
        .await
        .expect("attr")
        .expect("value");
    for (with_token, says) in [
        (true, "A viewer cannot acknowledge incidents."),
        (false, "Missing or wrong form token."),
    ] {
        let fields = if with_token {
            format!("[['csrf', '{token}'], ['ids', '1'], ['note', 'forged']]")
        } else {
            "[['ids', '1'], ['note', 'forged']]".to_string()
        };
        b.run_async(&format!(
            "const done = arguments[arguments.length - 1];
             const f = document.createElement('form');
             f.method = 'POST'; f.action = '/incidents/ack';
             for (const [k, v] of {fields}) {{
               const i = document.createElement('input');
               i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
             }}
             document.body.appendChild(f); f.submit(); done(null);"
        ))
        .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while b.url().await.path() != "/incidents/ack" {
            assert!(
                std::time::Instant::now() < deadline,
                "the form was not posted"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(b.text("h1").await, "Forbidden");
        assert_eq!(b.text("#message").await, says);
        b.goto(&format!("{url}/incidents")).await;
    }
    assert!(c.read().get(1).expect("get").expect("row").acks.is_empty());
    b.click_to("#logout", "/login").await;

    // Wrong passwords: five are told so, the sixth attempt (even the right password) is
    // refused until the window passes.
    for _ in 0..5 {
        b.fill("#name", "rita").await;
        b.fill("#password", "not the password").await;
        b.click_to("#login", "/login").await;
        assert_eq!(b.text("#message").await, "Wrong user name or password.");
    }
    b.fill("#name", "rita").await;
    b.fill("#password", PASSWORD).await;
    b.click_to("#login", "/login").await;
    assert!(
        b.text("#message")
            .await
            .starts_with("Too many failed logins."),
        "rate limited"
    );
    assert_eq!(b.url().await.path(), "/login");
    b.screenshot("console/rate-limited.png").await;
    let failed = c
        .read()
        .events(0, i64::MAX)
        .expect("events")
        .into_iter()
        .filter(|e| e.event == "login_failed")
        .count();
    assert_eq!(failed, 5);
    b.close().await;

    if std::env::var_os("AIWARDEN_UPDATE_DOCS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::copy(&dashboard, docs.join("console-dashboard.png")).expect("copy");
        std::fs::copy(&incidents, docs.join("console-incidents.png")).expect("copy");
    }
}
