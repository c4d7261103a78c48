//! A small SMTP server on 127.0.0.1 for the delivery tests: EHLO/HELO, STARTTLS (a real
//! rustls handshake), TLS from the first byte, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT. It records every session as it goes (each command with whether it
//! came over TLS, the credentials, the envelope and the message) so a test can check that
//! nothing was said in clear that should not have been. It can fail its first session to
//! exercise retries.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How the server behaves.
#[derive(Clone)]
pub(crate) struct Options {
    /// Offer STARTTLS on a plain connection.
    pub starttls: bool,
    /// TLS from the first byte (port 465 style).
    pub implicit_tls: bool,
    /// AUTH mechanisms advertised (offered over TLS, and in clear only by a server that
    /// has no STARTTLS: the careless server a client must not talk to in clear).
    pub auth: Vec<&'static str>,
    /// What goes wrong in the first session.
    pub fail_first: Option<Fail>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            starttls: true,
            implicit_tls: false,
            auth: vec!["PLAIN", "LOGIN"],
            fail_first: None,
        }
    }
}

/// A fault in the first session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The connection is closed at once, before the greeting.
    Drop,
    /// `451` to MAIL FROM: try again later.
    Temporary,
    /// `550` to MAIL FROM: refused for good.
    Permanent,
}

/// Credentials as they arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Auth {
    /// PLAIN or LOGIN.
    pub mechanism: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Whether they came over TLS.
    pub tls: bool,
}

/// What one connection saw.
#[derive(Clone, Debug, Default)]
pub(crate) struct Session {
    /// Every command's verb, with whether the connection was encrypted then.
    pub commands: Vec<(String, bool)>,
    /// The TLS handshake completed.
    pub tls: bool,
    /// AUTH, when it succeeded.
    pub auth: Option<Auth>,
    /// MAIL FROM's address, and whether it came over TLS.
    pub mail_from: Option<(String, bool)>,
    /// RCPT TO addresses.
    pub rcpt: Vec<String>,
    /// The message as received (dot-unstuffed, without the final dot line).
    pub data: Option<Vec<u8>>,
}

/// A running server; stops when dropped.
pub(crate) struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Session>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a server on 127.0.0.1 with a free port.
    pub(crate) fn start(options: Options, tls: Arc<rustls::ServerConfig>) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let shared = sessions.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let acceptor = TlsAcceptor::from(tls);
                let options = Arc::new(options);
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let index = {
                                let mut all = shared.lock().expect("lock");
                                all.push(Session::default());
                                all.len() - 1
                            };
                            let record = Record { all: shared.clone(), index };
                            tokio::spawn(serve(tcp, options.clone(), acceptor.clone(), record));
                        }
                    }
                }
            });
        });
        Server {
            addr,
            sessions,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The sessions so far, in order of connection.
    pub(crate) fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().expect("lock").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One session's entry in the shared list, written as the session goes so a client that
/// has its reply finds the server's record complete.
#[derive(Clone)]
struct Record {
    all: Arc<Mutex<Vec<Session>>>,
    index: usize,
}

impl Record {
    fn with(&self, f: impl FnOnce(&mut Session)) {
        f(&mut self.all.lock().expect("lock")[self.index]);
    }
}

async fn serve(tcp: TcpStream, options: Arc<Options>, acceptor: TlsAcceptor, record: Record) {
    let first = record.index == 0;
    if first && options.fail_first == Some(Fail::Drop) {
        drop(tcp);
        return;
    }
    if options.implicit_tls {
        let Ok(tls) = acceptor.accept(tcp).await else {
            return;
        };
        record.with(|s| s.tls = true);
        let mut io = BufReader::new(tls);
        if reply(&mut io, "220 127.0.0.1 ESMTP test\r\n").await {
            let _ = dialogue(io, true, &options, &record).await;
        }
        return;
    }
    let mut io = BufReader::new(tcp);
    if !reply(&mut io, "220 127.0.0.1 ESMTP test\r\n").await {
        return;
    }
    if let Some(io) = dialogue(io, false, &options, &record).await {
        // STARTTLS accepted: whatever the client pipelined in clear is dropped with the
        // buffer, as a careful server does.
        let Ok(tls) = acceptor.accept(io.into_inner()).await else {
            return;
        };
        record.with(|s| s.tls = true);
        let _ = dialogue(BufReader::new(tls), true, &options, &record).await;
    }
}

async fn reply<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, text: &str) -> bool {
    io.get_mut().write_all(text.as_bytes()).await.is_ok() && io.get_mut().flush().await.is_ok()
}

async fn line<S: AsyncRead + Unpin>(io: &mut BufReader<S>) -> Option<String> {
    let mut l = String::new();
    match io.read_line(&mut l).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(l.trim_end_matches(['\r', '\n']).to_string()),
    }
}

fn b64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Serves commands until QUIT or the end; returns the stream when STARTTLS was accepted.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: BufReader<S>,
    tls: bool,
    options: &Options,
    record: &Record,
) -> Option<BufReader<S>> {
    let first = record.index == 0;
    while let Some(command) = line(&mut io).await {
        let (verb, rest) = command
            .split_once(' ')
            .map_or((command.as_str(), ""), |(v, r)| (v, r));
        let verb = verb.to_ascii_uppercase();
        record.with(|s| s.commands.push((verb.clone(), tls)));
        let ok = match verb.as_str() {
            "EHLO" => {
                let mut text = String::from("250-127.0.0.1 greets you\r\n250-8BITMIME\r\n");
                if options.starttls && !tls {
                    text.push_str("250-STARTTLS\r\n");
                }
                if tls || !options.starttls {
                    text.push_str(&format!("250-AUTH {}\r\n", options.auth.join(" ")));
                }
                text.push_str("250 SIZE 10000000\r\n");
                reply(&mut io, &text).await
            }
            "HELO" | "NOOP" | "RSET" => reply(&mut io, "250 ok\r\n").await,
            "STARTTLS" if options.starttls && !tls => {
                if reply(&mut io, "220 go ahead\r\n").await {
                    return Some(io);
                }
                false
            }
            "AUTH" => {
                let mut words = rest.split_whitespace();
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let creds = match mechanism.as_str() {
                    "PLAIN" if options.auth.contains(&"PLAIN") => {
                        let response = match initial {
                            Some(r) => Some(r),
                            None => {
                                reply(&mut io, "334 \r\n").await;
                                line(&mut io).await
                            }
                        };
                        response.and_then(|r| {
                            let decoded = b64(&r);
                            let mut parts = decoded.split('\0');
                            let _authz = parts.next()?;
                            Some((parts.next()?.to_string(), parts.next()?.to_string()))
                        })
                    }
                    "LOGIN" if options.auth.contains(&"LOGIN") => {
                        reply(&mut io, "334 VXNlcm5hbWU6\r\n").await;
                        let user = line(&mut io).await.map(|u| b64(&u));
                        reply(&mut io, "334 UGFzc3dvcmQ6\r\n").await;
                        let password = line(&mut io).await.map(|p| b64(&p));
                        user.zip(password)
                    }
                    _ => None,
                };
                match creds {
                    Some((user, password)) => {
                        record.with(|s| {
                            s.auth = Some(Auth {
                                mechanism,
                                user,
                                password,
                                tls,
                            })
                        });
                        reply(&mut io, "235 2.7.0 authenticated\r\n").await
                    }
                    None => reply(&mut io, "535 5.7.8 authentication failed\r\n").await,
                }
            }
            "MAIL" => {
                let from = rest
                    .split_once(':')
                    .map_or("", |(_, a)| a)
                    .trim()
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .to_string();
                match (first, options.fail_first) {
                    (true, Some(Fail::Temporary)) => {
                        reply(&mut io, "451 4.3.0 try again later\r\n").await
                    }
                    (true, Some(Fail::Permanent)) => {
                        reply(&mut io, "550 5.7.1 not accepted\r\n").await
                    }
                    _ => {
                        record.with(|s| s.mail_from = Some((from, tls)));
                        reply(&mut io, "250 2.1.0 ok\r\n").await
                    }
                }
            }
            "RCPT" => {
                let to = rest
                    .split_once(':')
                    .map_or("", |(_, a)| a)
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string();
                record.with(|s| s.rcpt.push(to));
                reply(&mut io, "250 2.1.5 ok\r\n").await
            }
            "DATA" => {
                if !reply(&mut io, "354 end with <CRLF>.<CRLF>\r\n").await {
                    return None;
                }
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    match io.read_until(b'\n', &mut raw).await {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                    if raw == b".\r\n" {
                        break;
                    }
                    // Dot-stuffing: a line that began with "." was sent with "..".
                    let raw = if raw.starts_with(b"..") {
                        &raw[1..]
                    } else {
                        &raw[..]
                    };
                    data.extend_from_slice(raw);
                }
                record.with(|s| s.data = Some(data));
                reply(&mut io, "250 2.0.0 queued\r\n").await
            }
            "QUIT" => {
                reply(&mut io, "221 2.0.0 bye\r\n").await;
                return None;
            }
            _ => reply(&mut io, "502 5.5.2 not implemented\r\n").await,
        };
        if !ok {
            return None;
        }
    }
    None
}
