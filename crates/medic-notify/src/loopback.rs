//! Loopback receivers for tests, `medic bench notify` and `medic notify
//! test`: a minimal HTTP/1.1 server (webhook, Slack, Teams and PagerDuty all
//! POST JSON) and a minimal SMTP server. Both can be killed (listener and
//! every open connection dropped at once) and restarted on the same port.
//! They record every message they accepted, with its stable id.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `X-Medic-Id` (HTTP) or the Message-ID's local part (SMTP).
    pub id: String,
    /// Request path (HTTP) or `smtp`.
    pub path: String,
    /// Lower-cased header names with values (HTTP only).
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Log = Arc<Mutex<Vec<Received>>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Http,
    Smtp,
}

/// A loopback server that can be killed and restarted.
pub struct Receiver {
    addr: SocketAddr,
    proto: Proto,
    log: Log,
    tasks: Option<JoinSet<()>>,
}

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Vec<Received>> {
    match log.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Receiver {
    /// An HTTP receiver on a free loopback port (answers 200 to every POST).
    pub async fn http() -> std::io::Result<Receiver> {
        Self::start(Proto::Http).await
    }

    /// An SMTP receiver on a free loopback port (accepts every message).
    pub async fn smtp() -> std::io::Result<Receiver> {
        Self::start(Proto::Smtp).await
    }

    /// An HTTP or SMTP receiver on a free port of another loopback address
    /// (e.g. `127.77.0.1`): its port cannot be taken, while it is down, by
    /// the many servers other tests start on 127.0.0.1.
    pub async fn on(ip: std::net::Ipv4Addr, smtp: bool) -> std::io::Result<Receiver> {
        let proto = if smtp { Proto::Smtp } else { Proto::Http };
        Self::start_at(proto, SocketAddr::from((ip, 0))).await
    }

    async fn start(proto: Proto) -> std::io::Result<Receiver> {
        Self::start_at(proto, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    async fn start_at(proto: Proto, at: SocketAddr) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(at).await?;
        let addr = listener.local_addr()?;
        let mut r = Receiver {
            addr,
            proto,
            log: Arc::new(Mutex::new(Vec::new())),
            tasks: None,
        };
        r.serve(listener);
        Ok(r)
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut set = JoinSet::new();
        let log = self.log.clone();
        let proto = self.proto;
        set.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    acc = listener.accept() => {
                        let Ok((sock, _)) = acc else { continue };
                        let log = log.clone();
                        conns.spawn(async move {
                            let _ = match proto {
                                Proto::Http => http_conn(sock, log).await,
                                Proto::Smtp => smtp_conn(sock, log).await,
                            };
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            // `conns` is dropped (every connection aborted) with this task.
        });
        self.tasks = Some(set);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/PATH`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn is_up(&self) -> bool {
        self.tasks.is_some()
    }

    /// Stops at once: the listener and every open connection are dropped.
    pub async fn kill(&mut self) {
        if let Some(mut set) = self.tasks.take() {
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.kill().await;
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.serve(l);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("cannot bind")))
    }

    /// Everything accepted so far, in order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.log).clone()
    }

    pub fn count(&self) -> usize {
        lock(&self.log).len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(set) = self.tasks.as_mut() {
            set.abort_all();
        }
    }
}

async fn http_conn(sock: TcpStream, log: Log) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                }
                if k == "connection" && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0u8; len.min(1 << 20)];
        r.read_exact(&mut body).await?;
        let id = headers
            .iter()
            .find(|(k, _)| k == "x-medic-id")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        // Recorded once the answer is written: a kill before that loses
        // the answer too, so the sender retries; nothing is recorded that
        // the sender was not told was accepted (no await in between).
        r.get_mut()
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
            .await?;
        lock(&log).push(Received {
            id,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        if close {
            return Ok(());
        }
    }
}

async fn smtp_conn(sock: TcpStream, log: Log) -> std::io::Result<()> {
    let mut r = BufReader::new(sock);
    r.get_mut()
        .write_all(b"220 medic-loopback ESMTP\r\n")
        .await?;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            r.get_mut().write_all(b"250 medic-loopback\r\n").await?;
        } else if cmd.starts_with("DATA") {
            r.get_mut().write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if l.trim_end() == "." {
                    break;
                }
                data.push_str(&l);
            }
            let id = data
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("message-id").then(|| {
                        v.trim()
                            .trim_start_matches('<')
                            .split('@')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                })
                .unwrap_or_default();
            r.get_mut().write_all(b"250 queued\r\n").await?;
            lock(&log).push(Received {
                id,
                path: "smtp".into(),
                headers: Vec::new(),
                body: data,
            });
        } else if cmd.starts_with("QUIT") {
            r.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            // MAIL, RCPT, RSET, NOOP, ...
            r.get_mut().write_all(b"250 ok\r\n").await?;
        }
    }
}
