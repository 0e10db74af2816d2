//! The redirect-capture listener: a loopback HTTP server on a configurable port and path that
//! records every authorization response a browser brings back (the `manual` login driver). It
//! answers with a short page and never acts on what it receives.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

/// `[callback]` in the target profile.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Port on 127.0.0.1 (the registered redirect URI's); unset = no listener.
    pub port: Option<u16>,
    /// Path the responses arrive at (default `/callback`).
    pub path: Option<String>,
}

/// A running listener.
#[derive(Clone)]
pub struct Listener {
    pub base: String,
    rx: Arc<Mutex<mpsc::Receiver<String>>>,
}

impl Listener {
    pub async fn start(cfg: &CallbackConfig) -> std::io::Result<Option<Listener>> {
        let Some(port) = cfg.port else {
            return Ok(None);
        };
        let path = cfg.path.clone().unwrap_or_else(|| "/callback".into());
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let base = format!("http://127.0.0.1:{port}{path}");
        // Bounded: a flood of hits cannot grow memory; the oldest unread stay, new ones drop.
        let (tx, rx) = mpsc::channel(64);
        let origin = format!("http://127.0.0.1:{port}");
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = l.accept().await else {
                    break;
                };
                let tx = tx.clone();
                let origin = origin.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 << 10];
                    let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
                        .await
                    {
                        Ok(Ok(n)) => n,
                        _ => return,
                    };
                    let head = String::from_utf8_lossy(&buf[..n]);
                    let target = head
                        .lines()
                        .next()
                        .and_then(|l| l.split(' ').nth(1))
                        .unwrap_or("/")
                        .to_string();
                    let _ = tx.try_send(format!("{origin}{target}"));
                    let body = "<!doctype html><title>authconform</title><p>authconform received the authorization response. You can close this tab.</p>";
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Ok(Some(Listener {
            base,
            rx: Arc::new(Mutex::new(rx)),
        }))
    }

    /// The next response received, waiting at most `wait`.
    pub async fn next(&self, wait: Duration) -> Option<String> {
        let mut rx = self.rx.lock().await;
        tokio::time::timeout(wait, rx.recv()).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_what_arrives() {
        // Port 0 would not be reachable by a fixed redirect URI; a test picks a free one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let l = Listener::start(&CallbackConfig {
            port: Some(port),
            path: None,
        })
        .await
        .expect("bind")
        .expect("listener");
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"GET /callback?code=abc&state=x HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let got = l.next(Duration::from_secs(5)).await.expect("a hit");
        assert_eq!(
            got,
            format!("http://127.0.0.1:{port}/callback?code=abc&state=x")
        );
    }
}
