//! A static HTTPS file server on 127.0.0.1 for the bundle and enrolment tests: GET PATH
//! answers the bytes last published at PATH (200), or 404; with a token required, a request
//! without `Authorization: Bearer TOKEN` gets 401. One request per connection, over rustls
//! with the configuration the test gives (a certificate from `pki`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;

/// A static HTTPS file server: GET PATH answers the bytes last published at PATH, or 404.
pub(crate) struct Static {
    pub(crate) addr: SocketAddr,
    pub(crate) files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// The bearer token every request must carry, when set (the enrolment test's).
    #[allow(dead_code)]
    pub(crate) token: Arc<Mutex<Option<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Static {
    pub(crate) fn start(tls: Arc<rustls::ServerConfig>) -> Static {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let files = Arc::new(Mutex::new(HashMap::<String, Vec<u8>>::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = files.clone();
        let token = Arc::new(Mutex::new(None::<String>));
        let wanted = token.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let acceptor = TlsAcceptor::from(tls);
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let (acceptor, files) = (acceptor.clone(), shared.clone());
                            let wanted = wanted.clone();
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(tcp).await else { return };
                                let mut io = BufReader::new(tls);
                                let mut line = String::new();
                                if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                                let mut bearer = None;
                                loop {
                                    let mut h = String::new();
                                    if io.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
                                        break;
                                    }
                                    if let Some((k, v)) = h.split_once(':') {
                                        if k.eq_ignore_ascii_case("authorization") {
                                            bearer = v.trim().strip_prefix("Bearer ").map(str::to_string);
                                        }
                                    }
                                }
                                let need = wanted.lock().expect("lock").clone();
                                let body = files.lock().expect("lock").get(&path).cloned();
                                let (status, body) = match (body, need) {
                                    (_, Some(t)) if bearer.as_deref() != Some(t.as_str()) => {
                                        ("401 Unauthorized", b"bad token".to_vec())
                                    }
                                    (Some(b), _) => ("200 OK", b),
                                    (None, _) => ("404 Not Found", b"not here".to_vec()),
                                };
                                let head = format!(
                                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                    body.len()
                                );
                                let mut s = io.into_inner();
                                let _ = s.write_all(head.as_bytes()).await;
                                let _ = s.write_all(&body).await;
                                let _ = s.shutdown().await;
                            });
                        }
                    }
                }
            });
        });
        Static {
            addr,
            files,
            token,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Publishes a bundle at /rules.bundle and its signature beside it.
    pub(crate) fn publish(&self, bundle: &[u8], signature: &str) {
        let mut f = self.files.lock().expect("lock");
        f.insert("/rules.bundle".into(), bundle.to_vec());
        f.insert(
            "/rules.bundle.minisig".into(),
            signature.as_bytes().to_vec(),
        );
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}/rules.bundle", self.addr)
    }
}

impl Drop for Static {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
