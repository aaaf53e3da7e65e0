//! `medic healthcheck`: one plain HTTP/1.0 GET on loopback, for a container
//! HEALTHCHECK in an image that has nothing but the medic binary.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status code of `GET http://127.0.0.1:{port}{path}`, within `timeout`.
pub async fn get(port: u16, path: &str, timeout: Duration) -> Result<u16, String> {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let run = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut head = Vec::new();
        // The status line is all we need: `HTTP/1.x NNN ...`.
        let _ = (&mut s)
            .take(64)
            .read_to_end(&mut head)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&head);
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP answer: {text:?}"))
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("no answer within {}ms", timeout.as_millis()))?
}
