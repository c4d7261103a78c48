//! A real PostgreSQL for the fleet roll-up's tests and bench: Debian's server binaries
//! (`postgresql` package), a cluster made by `initdb` in a temporary directory owned by
//! the `postgres` user, listening on 127.0.0.1 at a free port with TLS on (a certificate
//! for 127.0.0.1 and localhost signed by a CA made here) and only `hostssl` password logins
//! over TCP. Stopped (immediate) and removed on drop. Needs root (the server refuses to run
//! as root, so it runs as `postgres` through `runuser`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A running cluster.
pub(crate) struct Pg {
    /// The directory (data, socket, certificates, password file).
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca_file: PathBuf,
    /// The `fleet` role's password, in a 0600 file.
    pub password_file: PathBuf,
    bin: PathBuf,
    opts: String,
}

/// The server binaries' directory, if the package is installed.
pub(crate) fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// Why the PostgreSQL tests cannot run here, if they cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !nix_is_root() {
        return Some("needs root (the server runs as the postgres user through runuser)".into());
    }
    if pg_bin().is_none() {
        return Some("no PostgreSQL server binaries (apt-get install postgresql)".into());
    }
    None
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn ok(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pg {
    /// Makes and starts a cluster with a database `fleet` owned by role `fleet`.
    pub(crate) fn start() -> Pg {
        let bin = pg_bin().expect("postgresql binaries");
        let dir = tempfile::Builder::new()
            .prefix("aiwarden-pg")
            .tempdir()
            .expect("tempdir")
            .keep();
        let chown = |p: &Path| {
            ok(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(p)
                    .output(),
            );
        };
        // Certificates.
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "fleet test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
        leaf.distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf.subject_alt_names = vec![
            SanType::IpAddress([127, 0, 0, 1].into()),
            SanType::DnsName("localhost".try_into().expect("name")),
        ];
        let cert = leaf.signed_by(&key, &issuer).expect("signed");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("ca");
        std::fs::write(dir.join("server.crt"), cert.pem()).expect("cert");
        std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("key");
        let password_file = dir.join("fleet.pass");
        std::fs::write(&password_file, "fleet-test-password\n").expect("pw");
        set_mode(&password_file, 0o600);
        set_mode(&dir.join("server.key"), 0o600);
        set_mode(&dir, 0o755);
        chown(&dir);
        let data = dir.join("data");
        ok(
            "initdb",
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("initdb"))
                .args(["-D"])
                .arg(&data)
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .output(),
        );
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("hba");
        chown(&data);
        let port = free_port();
        let opts = format!(
            "-p {port} -k {d} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            d = dir.display()
        );
        let pg = Pg {
            dir,
            port,
            ca_file,
            password_file,
            bin,
            opts,
        };
        pg.restart();
        pg.psql(
            "postgres",
            "CREATE ROLE fleet LOGIN PASSWORD 'fleet-test-password'",
        );
        pg.psql("postgres", "CREATE DATABASE fleet OWNER fleet");
        pg
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        ok(
            &format!("pg_ctl {args:?}"),
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(args)
                .output(),
        )
    }

    /// Stops the server (fast): boxes find it unreachable.
    pub(crate) fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts it (again) with its options.
    pub(crate) fn restart(&self) {
        self.pg_ctl(&["-o", &self.opts, "-w", "-t", "60", "start"]);
    }

    /// The libpq connection string a box uses (no password: that is in the file).
    pub(crate) fn url(&self) -> String {
        format!("host=127.0.0.1 port={} dbname=fleet user=fleet", self.port)
    }

    /// Runs `sql` in `db` as the superuser over the socket; returns its unaligned output.
    pub(crate) fn psql(&self, db: &str, sql: &str) -> String {
        let out = ok(
            &format!("psql {sql}"),
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("psql"))
                .arg("-h")
                .arg(&self.dir)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-d",
                    db,
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-Atc",
                    sql,
                ])
                .output(),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
