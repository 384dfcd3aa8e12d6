//! A lean HTTP/1.1 client: one keep-alive connection per simulated client,
//! requests sent one after another on it (no pool, no TLS). Reconnects after
//! a connection error or a timeout.

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// Where the API is: host:port for the socket and the `Host` header.
#[derive(Clone, Debug)]
pub struct Target {
    authority: String,
    host_header: HeaderValue,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(anyhow!("only http:// URLs are supported, got {url}"));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| anyhow!("URL {url} has no host"))?;
        let port = auth.port_u16().unwrap_or(80);
        let authority = format!("{}:{port}", auth.host());
        let host_header = HeaderValue::from_str(auth.as_str())?;
        Ok(Self {
            authority,
            host_header,
        })
    }
}

/// Why a request produced no response.
#[derive(Debug)]
pub enum Failure {
    Connect(String),
    Io(String),
    Timeout,
}

impl Failure {
    /// Key under which the failure is counted.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect(_) => "connect",
            Failure::Io(_) => "io",
            Failure::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Io(e) => write!(f, "io: {e}"),
            Failure::Timeout => write!(f, "timeout"),
        }
    }
}

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value as an integer (e.g. `Chat-Epoch`); None when absent or not a number.
    pub fn header_i64(&self, name: &str) -> Option<i64> {
        self.headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }
}

pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
    timeout: Duration,
}

impl Conn {
    pub fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            sender: None,
            timeout,
        }
    }

    /// Opens the connection now (so connecting is not part of the first measurement).
    pub async fn connect(&mut self) -> Result<(), Failure> {
        if self.sender.is_none() {
            let stream = TcpStream::connect(&self.target.authority)
                .await
                .map_err(|e| Failure::Connect(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| Failure::Connect(e.to_string()))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(())
    }

    /// POSTs a JSON body; returns the status and the whole response body.
    pub async fn post_json(
        &mut self,
        path: &str,
        token: Option<&HeaderValue>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Failure> {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// GETs `path` (with its query string); returns the status and the whole response body.
    pub async fn get(
        &mut self,
        path: &str,
        token: Option<&HeaderValue>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        self.request(Method::GET, path, token, None).await
    }

    async fn request(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        self.call(method, path, token, body)
            .await
            .map(|r| (r.status, r.body))
    }

    /// Any method, with an optional JSON body; the answer keeps its headers.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<Reply, Failure> {
        let timeout = self.timeout;
        let call = self.request_inner(method, path, token, body);
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn request_inner(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&HeaderValue>,
        body: Option<Bytes>,
    ) -> Result<Reply, Failure> {
        self.connect().await?;
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| Failure::Connect("no connection".into()))?;
        sender
            .ready()
            .await
            .map_err(|e| Failure::Io(e.to_string()))?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target.host_header.clone());
        if body.is_some() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, t.clone());
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Failure::Io(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Failure::Io(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| Failure::Io(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: bytes,
        })
    }
}

/// `Bearer <token>` as a header value.
pub fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

/// POSTs JSON during set-up and returns the JSON answer; any non-2xx is an error.
pub async fn post(
    conn: &mut Conn,
    path: &str,
    token: Option<&HeaderValue>,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let (status, bytes) = conn
        .post_json(path, token, Bytes::from(serde_json::to_vec(body)?))
        .await
        .map_err(|e| anyhow!("POST {path}: {e}"))?;
    if !status.is_success() {
        return Err(anyhow!(
            "POST {path}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).with_context(|| format!("POST {path}: response body"))
}

/// A string field of a JSON answer.
pub fn field(v: &serde_json::Value, name: &str) -> anyhow::Result<String> {
    v.get(name)
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("response lacks {name}: {v}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(t.authority, "127.0.0.1:8080");
        let t = Target::parse("http://localhost/").unwrap();
        assert_eq!(t.authority, "localhost:80");
        assert!(Target::parse("https://x").is_err());
    }
}
