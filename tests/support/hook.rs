//! A small HTTP/1.1 server on 127.0.0.1 standing in for an MSP's ticketing webhook: it
//! answers each request with the next status of a script (the last one repeats), over
//! plain TCP or rustls, and records every request it read in full.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A request as received.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    /// `POST`.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lowercase).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running server; stops when dropped.
pub(crate) struct Hook {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hook {
    /// Starts a server answering `statuses` in turn; with `tls`, over TLS.
    pub(crate) fn start(statuses: Vec<u16>, tls: Option<Arc<rustls::ServerConfig>>) -> Hook {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let shared = requests.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let acceptor = tls.map(TlsAcceptor::from);
                let statuses = Arc::new(statuses);
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let (shared, statuses) = (shared.clone(), statuses.clone());
                            match acceptor.clone() {
                                Some(a) => {
                                    tokio::spawn(async move {
                                        if let Ok(s) = a.accept(tcp).await {
                                            serve(s, &shared, &statuses).await;
                                        }
                                    });
                                }
                                None => {
                                    tokio::spawn(async move { serve(tcp, &shared, &statuses).await });
                                }
                            }
                        }
                    }
                }
            });
        });
        Hook {
            addr,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The requests so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request, records it, answers the script's next status and closes.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    requests: &Mutex<Vec<Request>>,
    statuses: &[u16],
) {
    let mut io = BufReader::new(stream);
    let mut head = String::new();
    if io.read_line(&mut head).await.unwrap_or(0) == 0 {
        return;
    }
    let mut parts = head.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if io.read_line(&mut l).await.unwrap_or(0) == 0 {
            return;
        }
        let l = l.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if io.read_exact(&mut body).await.is_err() {
        return;
    }
    let status = {
        let mut all = requests.lock().expect("lock");
        all.push(Request {
            method,
            path,
            headers,
            body,
        });
        statuses[(all.len() - 1).min(statuses.len() - 1)]
    };
    let text = format!("status {status} from the test hook");
    let answer = format!(
        "HTTP/1.1 {status} Test\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let s = io.get_mut();
    let _ = s.write_all(answer.as_bytes()).await;
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}
