//! The daemon under store faults: a corrupt header (at start and while running), the file
//! deleted while running (and while stopped), a tail cut off, a read-only directory and a
//! full disk. Through each, a probe asks the resolver with `dig` for a cached and an
//! uncached name every 25 ms and every question is answered (99% of the cached ones within
//! 100 ms by dig's own query time); clients on 127.0.0.x ask for blocked names during the
//! fault, and once the store is back every incident they made is in it, exactly once, with
//! the touch that followed it (each phase prints how many were made and found). `aiwarden check` fails naming
//! the fault while it lasts, `aiwarden verify` exits 3 for a cut-off tail and a corrupt
//! file, and SIGTERM on a full disk exits within the shutdown grace. The daemon runs with
//! umask 000 and its files are 0600.
//!
//! The read-only directory and the full disk need root: they are mounts (a read-only bind
//! mount, a 4 MiB tmpfs) in a private mount namespace held by a `sleep` this test starts, so
//! they vanish with it. Without root those two skip with a printed reason. All traffic is on
//! loopback. Prints its duration.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "support/faults.rs"]
mod faults;

use faults::*;

/// A header overwritten while stopped: `check` names it, `verify` exits 3; the daemon sets
/// the file aside and begins a new chain that takes every incident. Then overwritten while
/// running: noticed within a second, set aside again. The files are 0600 under umask 000.
fn corrupt_header(p: &Phase) {
    let d = p.start();
    p.make_incidents(&d, &[11, 12]);
    p.assert_recorded(&p.store(), &[11, 12]);
    // The daemon records the rules once the writer has made the store: wait for that row,
    // the third of the chain the header overwrite then ends.
    wait_for("the rules_loaded event", Duration::from_secs(10), || {
        text(&p.verify(&p.store())).contains("events: rules_loaded 1")
    });
    for f in ["", "-wal", "-shm", ".head"] {
        let f = PathBuf::from(format!("{}{f}", p.store().display()));
        assert_eq!(
            std::fs::metadata(&f).expect("file").permissions().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
    }
    d.stop();
    clobber_header(&p.store());
    p.check_fails("corrupt");
    let out = p.verify(&p.store());
    assert_eq!(
        out.status.code(),
        Some(3),
        "verify of a corrupt file: {out:?}"
    );

    let d = p.start();
    let probe = probe(d.dns, "corrupt");
    p.make_incidents(&d, &[13, 14, 15, 16]);
    p.assert_kept(&p.store(), &[13, 14, 15, 16]);
    let out = p.verify(&p.store());
    assert!(out.status.success(), "{out:?}");
    let said = text(&out);
    // The new chain begins with the writer's break row, or with the `rules_loaded` event
    // the daemon's housekeeping records at start when it got there first (both chained,
    // the break still names why and where the old chain ended).
    assert!(
        (said.contains("break: the chain began again at row 1")
            || said.contains("break: the chain began again at row 2")
                && said.contains("events: rules_loaded 1"))
            && said.contains("corrupt"),
        "{said}"
    );
    // Two incidents and the `rules_loaded` event the daemon records when it starts.
    assert!(
        said.contains("(the chain before ended at row 3,"),
        "the old head, from its head file: {said}"
    );
    let aside = set_aside(&p.dir.join("state"), "corrupt");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        p.verify(&aside[0]).status.code(),
        Some(3),
        "the set-aside file is still corrupt"
    );
    assert!(
        d.http("/healthz")
            .contains("store: degraded: a new chain began"),
        "{}",
        d.http("/healthz")
    );

    // While running: incidents made at once, before the daemon notices (it checks the
    // header before each write and every second), go to the new chain.
    clobber_header(&p.store());
    p.make_incidents(&d, &[17, 18]);
    wait_for(
        "corrupt: a second set-aside",
        Duration::from_secs(10),
        || set_aside(&p.dir.join("state"), "corrupt").len() == 2,
    );
    p.assert_kept(&p.store(), &[17, 18]);
    assert!(
        d.metric("aiwarden_store_errors_total{kind=\"corrupt\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    probe.finish("corrupt");
    d.stop();
}

/// The file deleted under the running daemon: its rows are rescued from the open connection
/// (and verify against their head file), a new chain begins with a break, and incidents
/// made after the deletion are all in it.
fn deleted(p: &Phase) {
    let d = p.start();
    let probe = probe(d.dns, "deleted");
    p.make_incidents(&d, &[21, 22]);
    p.assert_recorded(&p.store(), &[21, 22]);
    std::fs::remove_file(p.store()).expect("rm");
    p.make_incidents(&d, &[23, 24, 25, 26]);
    p.assert_kept(&p.store(), &[23, 24, 25, 26]);
    let saved = set_aside(&p.dir.join("state"), "deleted");
    assert_eq!(saved.len(), 1, "{saved:?}");
    let out = p.verify(&saved[0]);
    assert!(out.status.success(), "the rescued rows verify: {out:?}");
    p.assert_recorded(&saved[0], &[21, 22]);
    let out = p.verify(&p.store());
    assert!(
        out.status.success() && text(&out).contains("deleted while open"),
        "{out:?}"
    );
    assert!(
        d.metric("aiwarden_store_errors_total{kind=\"vanished\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    probe.finish("deleted");
    d.stop();

    // Deleted while stopped, its head file left: check and verify name it; the daemon
    // begins a new chain that says so and takes every incident.
    std::fs::remove_file(p.store()).expect("rm");
    p.check_fails("the store file is missing");
    let out = p.verify(&p.store());
    assert_eq!(out.status.code(), Some(3), "verify: {out:?}");
    let d = p.start();
    let again = faults::probe(d.dns, "stopped");
    p.make_incidents(&d, &[27, 28]);
    p.assert_kept(&p.store(), &[27, 28]);
    let out = p.verify(&p.store());
    assert!(
        out.status.success() && text(&out).contains("missing from the end"),
        "{out:?}"
    );
    again.finish("deleted while stopped");
    d.stop();
}

/// Rows cut off the end with the sqlite3 shell's moves (the guard trigger dropped): verify
/// exits 3 naming them, check fails; the daemon then sets the store aside and carries on.
/// This phase runs with `[store] keyed = true`: the daemon creates the key (0600) and
/// `verify --keyed` passes on what it wrote.
fn truncated(p: &Phase) {
    let d = p.start();
    p.make_incidents(&d, &[31, 32, 33, 34]);
    p.assert_recorded(&p.store(), &[31, 32, 33, 34]);
    // The daemon records the rules once the writer has made the store: wait for that row.
    wait_for("the rules_loaded event", Duration::from_secs(10), || {
        text(&p.verify(&p.store())).contains("events: rules_loaded 1")
    });
    d.stop();
    let key = PathBuf::from(format!("{}.key", p.store().display()));
    assert_eq!(
        std::fs::metadata(&key)
            .expect("the key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let out = p.verify(&p.store());
    assert!(
        out.status.success() && text(&out).contains(", keyed"),
        "verify --keyed: {out:?}"
    );
    let conn = rusqlite::Connection::open(p.store()).expect("open");
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; DROP TRIGGER log_no_delete; DELETE FROM log WHERE id > 2;",
    )
    .expect("cut the tail");
    drop(conn);
    let out = p.verify(&p.store());
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        // Four incidents and the daemon's `rules_loaded` event: rows 3 to 5 cut off.
        text(&out).contains("chain broken at row 3: rows 3 to 5 are missing from the end"),
        "{}",
        text(&out)
    );
    p.check_fails("missing from the end");
    let d = p.start();
    let probe = probe(d.dns, "truncated");
    p.make_incidents(&d, &[35, 36]);
    p.assert_kept(&p.store(), &[35, 36]);
    let out = p.verify(&p.store());
    assert!(
        out.status.success() && text(&out).contains("missing from the end"),
        "{out:?}"
    );
    let aside = set_aside(&p.dir.join("state"), "corrupt");
    assert_eq!(p.verify(&aside[0]).status.code(), Some(3));
    probe.finish("truncated");
    d.stop();
}

/// The store's directory read-only (a read-only bind mount): incidents spool, health says
/// why and how many, check names it; back to read-write, every one is written.
fn read_only(p: &Phase) {
    let state = p.dir.join("state");
    let d = p.start();
    p.make_incidents(&d, &[41, 42]);
    p.assert_recorded(&p.store(), &[41, 42]);
    d.stop();
    let s = state.display();
    p.ns.expect("ns").sh(&format!(
        "mount --bind '{s}' '{s}' && mount -o remount,bind,ro '{s}'"
    ));
    let d = p.start();
    let probe = probe(d.dns, "readonly");
    p.make_incidents(&d, &[43, 44, 45, 46]);
    wait_for(
        "readonly: store down, 4 spooled",
        Duration::from_secs(10),
        || {
            let h = d.http("/healthz");
            h.contains(&format!("read-only directory {s}")) && h.contains("(4 incidents spooled)")
        },
    );
    assert!(
        d.http("/healthz").starts_with("HTTP/1.1 200"),
        "DNS works: degraded, not down"
    );
    assert_eq!(d.metric("aiwarden_store_up"), Some(0.0));
    assert!(d.metric("aiwarden_store_spooled_ops").unwrap_or(0.0) >= 8.0);
    p.check_fails("read-only directory");
    p.ns.expect("ns")
        .sh(&format!("mount -o remount,bind,rw '{s}'"));
    p.assert_kept(&p.store(), &[43, 44, 45, 46]);
    p.assert_recorded(&p.store(), &[41, 42, 43, 44, 45, 46]);
    wait_for("readonly: store ok", Duration::from_secs(10), || {
        d.http("/healthz").contains("store: ok")
    });
    assert_eq!(d.metric("aiwarden_store_spooled_ops"), Some(0.0));
    assert!(
        d.metric("aiwarden_store_reopen_attempts_total")
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(p.check().status.success());
    probe.finish("readonly");
    d.stop();
}

/// The store on a 4 MiB tmpfs filled up: incidents spool, check names it; the filler
/// removed, every one is written. Filled again, SIGTERM exits within the grace and says
/// what it could not write.
fn full(p: &Phase) {
    let state = p.dir.join("state");
    let s = state.display();
    let ns = p.ns.expect("ns");
    ns.sh(&format!(
        "mount -t tmpfs -o size=4m,mode=0700 aiwarden-test '{s}'"
    ));
    let fill = format!("dd if=/dev/zero of='{s}/filler' bs=64k 2>/dev/null; sync; true");
    let d = p.start();
    let probe = probe(d.dns, "full");
    p.make_incidents(&d, &[51, 52]);
    p.assert_recorded(&p.store(), &[51, 52]);
    ns.sh(&fill);
    p.make_incidents(&d, &[53, 54, 55, 56]);
    wait_for(
        "full: store down, 4 spooled",
        Duration::from_secs(10),
        || {
            let h = d.http("/healthz");
            h.contains(&format!("no space left on {s}")) && h.contains("(4 incidents spooled)")
        },
    );
    let health = d.http("/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.contains("\ndegraded\n"),
        "DNS works: degraded, not down: {health}"
    );
    assert_eq!(d.metric("aiwarden_store_up"), Some(0.0));
    p.check_fails("no space left");
    ns.sh(&format!("rm '{s}/filler'"));
    p.assert_kept(&p.store(), &[53, 54, 55, 56]);
    p.assert_recorded(&p.store(), &[51, 52, 53, 54, 55, 56]);
    wait_for("full: store ok", Duration::from_secs(10), || {
        d.http("/healthz").contains("store: ok")
    });
    let out = p.verify(&p.store());
    assert!(out.status.success(), "{out:?}");

    // Full again, and SIGTERM.
    ns.sh(&fill);
    p.make_incidents(&d, &[57, 58]);
    wait_for("full: 2 spooled", Duration::from_secs(10), || {
        d.http("/healthz").contains("(2 incidents spooled)")
    });
    probe.finish("full");
    let (took, log) = d.stop();
    println!("full: SIGTERM on a full disk took {took:?}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    // Neither the store nor the spool file can take them: counted and logged as lost.
    let said = log
        .lines()
        .find(|l| l.contains("not written before shutdown"))
        .unwrap_or_default();
    assert!(
        said.contains("incidents=2") && said.contains("lost"),
        "{log}"
    );
    println!("full: 2 incidents spooled at SIGTERM on a full disk, logged as lost: {said}");
}

fn phase<'a>(
    root: &Path,
    name: &'static str,
    ns: Option<&'a Ns>,
    upstream: SocketAddr,
) -> Phase<'a> {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("state")).expect("mkdir");
    Phase {
        name,
        dir,
        ns,
        upstream,
        rules: root.join("rules"),
        keyed: name == "truncated",
    }
}

fn timed(name: &str, f: impl FnOnce()) {
    let t = Instant::now();
    f();
    println!("{name}: {:.1} s", t.elapsed().as_secs_f64());
}

#[test]
fn store_faults() {
    let t0 = Instant::now();
    let up = upstream();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    copy_rules(&root.join("rules"));
    timed("corrupt header", || {
        corrupt_header(&phase(root, "corrupt", None, up.addr))
    });
    timed("deleted while running", || {
        deleted(&phase(root, "deleted", None, up.addr))
    });
    timed("truncated tail", || {
        truncated(&phase(root, "truncated", None, up.addr))
    });
    if is_root() {
        let ns = Ns::new();
        timed("read-only directory", || {
            read_only(&phase(root, "readonly", Some(&ns), up.addr))
        });
        timed("full disk", || {
            full(&phase(root, "full", Some(&ns), up.addr))
        });
    } else {
        println!(
            "skipped read-only directory and full disk: they need root for mounts in a \
             private mount namespace (CI runs as root)"
        );
    }
    println!("store_faults: {:.1} s", t0.elapsed().as_secs_f64());
}
