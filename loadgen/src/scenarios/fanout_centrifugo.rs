//! `fanout --target centrifugo`: the `fanout` scenario against Centrifugo (v6),
//! for a side-by-side with the platform (issue #16, item 3).
//!
//! Everything but the three steps below is `fanout`'s own ([`super::fanout::drive`]):
//! the same sockets, rooms, schedule, senders, body size, latency figures and report.
//!
//! - **Rooms** are channels `lg<run>-<r>` (no namespace; `scripts/centrifugo.sh start`
//!   lets any client with a valid token subscribe to those). Socket i subscribes to the
//!   channel of room i mod R, as the platform's socket i subscribes to room i mod R.
//! - **Sockets** speak Centrifugo's JSON protocol (client protocol v2) on
//!   `/connection/websocket`: `{"id":1,"connect":{"token":JWT}}`, then
//!   `{"id":2,"subscribe":{"channel":…}}`, each waited for. The token is an HS256 JWT
//!   signed with `--hmac-secret` whose `sub` is user i mod `--users`. Server frames may
//!   hold several replies, one per line; a publication is
//!   `{"push":{"channel":…,"pub":{"data":{"id":…,"body":…}}}}`, and an empty reply `{}`
//!   is the server's ping, answered with an empty command `{}`.
//! - **Sends** are `POST /api/publish` (the server HTTP API, `Authorization: apikey
//!   <--api-key>`) with `{"channel":…,"data":{"id":<uuid>,"body":<body>}}`; the id is
//!   made here, since without history Centrifugo's answer carries none. Centrifugo
//!   answers errors with 200 and `{"error":{…}}`, counted as `api-error-<code>`.
//!
//! **Latency.** As for the platform, "accepted" is the arrival of the answer that
//! accepts the message: here the publish call's `200` (without an error), the
//! counterpart of the platform's `201`; accept → socket runs from it to each socket's
//! receipt of the publication. The scheduled → socket figure runs from the publish's
//! scheduled start and includes the publish call. Centrifugo (memory engine) hands the
//! publication to the subscribers' queues inside the publish call, so deliveries may
//! precede the 200: they are counted in `delivered_before_accept` and recorded as 0,
//! exactly as the platform's deliveries before their 201. Compare scheduled → socket
//! as well as accept → socket.

use super::fanout::{Backend, Dialer, FanoutArgs, Ws};
use crate::http::{Conn, Target};
use crate::report;
use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::header::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// The options of `--target centrifugo` (what `scripts/centrifugo.sh start` prints).
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Centrifugo (--target centrifugo)")]
pub struct CentrifugoArgs {
    /// Key of Centrifugo's server HTTP API (`http_api.key`; CENTRIFUGO_API_KEY).
    #[arg(long)]
    pub api_key: Option<String>,
    /// HMAC secret of connection JWTs (`client.token.hmac_secret_key`; CENTRIFUGO_HMAC_SECRET).
    #[arg(long)]
    pub hmac_secret: Option<String>,
    /// WebSocket endpoint of Centrifugo's bidirectional transport.
    #[arg(long, default_value = "/connection/websocket")]
    pub ws_path: String,
}

/// Centrifugo behind `--url`, with the run's channels and tokens.
pub struct Centrifugo {
    target: Target,
    dialer: Dialer,
    /// `apikey <key>` for the server HTTP API.
    api_key: HeaderValue,
    /// Connection JWT of each user.
    tokens: Vec<String>,
    channels: Vec<String>,
}

impl Centrifugo {
    /// Checks the API key against `/api/info`, signs the users' tokens and names the channels.
    pub async fn new(args: &FanoutArgs) -> anyhow::Result<Self> {
        let c = &args.centrifugo;
        let key = c
            .api_key
            .as_deref()
            .ok_or_else(|| anyhow!("--target centrifugo needs --api-key (CENTRIFUGO_API_KEY)"))?;
        let secret = c.hmac_secret.as_deref().ok_or_else(|| {
            anyhow!("--target centrifugo needs --hmac-secret (CENTRIFUGO_HMAC_SECRET)")
        })?;
        let target = Target::parse(&args.url)?;
        let api_key = HeaderValue::from_str(&format!("apikey {key}"))
            .context("--api-key is not a valid header value")?;
        let mut conn = Conn::new(target.clone(), Duration::from_secs(10));
        let (status, body) = conn
            .post_json("/api/info", Some(&api_key), Bytes::from_static(b"{}"))
            .await
            .map_err(|e| anyhow!("cannot reach Centrifugo at {}: {e}", args.url))?;
        if !status.is_success() {
            return Err(anyhow!(
                "Centrifugo's /api/info answered {status} (wrong --api-key?): {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let info: serde_json::Value =
            serde_json::from_slice(&body).context("Centrifugo's /api/info: not JSON")?;
        if let Some(e) = info.get("error") {
            return Err(anyhow!("Centrifugo's /api/info: {e}"));
        }
        let version = info
            .pointer("/result/nodes/0/version")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?");
        let run_id = Uuid::new_v4().simple().to_string()[..10].to_owned();
        let users = args.users.max(1);
        let rooms = args.rooms.max(1);
        report::say(&format!(
            "setup: Centrifugo {version} at {}: {rooms} channels, {users} user token(s) (run {run_id})",
            args.url
        ));
        let now = jsonwebtoken::get_current_timestamp();
        let key = EncodingKey::from_secret(secret.as_bytes());
        let tokens = (0..users)
            .map(|u| {
                let claims =
                    json!({"sub": format!("lg{run_id}_{u}"), "iat": now, "exp": now + 24 * 3600});
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
                    .map_err(|e| anyhow!("signing a connection token: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let channels = (0..rooms).map(|r| format!("lg{run_id}-{r}")).collect();
        let dialer = Dialer::new_at(&args.url, &c.ws_path, !args.no_spread).await?;
        Ok(Self {
            target,
            dialer,
            api_key,
            tokens,
            channels,
        })
    }
}

impl Backend for Centrifugo {
    const SCENARIO: &'static str = "fanout-centrifugo";
    const ACCEPT_MEANS: &'static str = "the arrival of the publish call's 200 without an error \
         (Centrifugo has handed the publication to its broker; with the memory engine the \
         subscribers' queues are filled inside the call)";
    const SERVER_PROCESSES: &'static [&'static str] = &["centrifugo"];
    const BACKING_PROCESSES: &'static [&'static str] = &[];

    fn rooms(&self) -> usize {
        self.channels.len()
    }
    fn users(&self) -> usize {
        self.tokens.len()
    }
    fn source_addresses(&self) -> usize {
        self.dialer.source_addresses()
    }
    fn http_target(&self) -> &Target {
        &self.target
    }

    async fn open(&self, i: usize, room: usize, timeout: Duration) -> Result<Ws, String> {
        let mut ws = self.dialer.open_with(i, None).await?;
        let deadline = Instant::now() + timeout;
        let token = &self.tokens[i % self.tokens.len()];
        let connect = json!({"id": 1, "connect": {"token": token, "name": "loadgen"}});
        command(&mut ws, 1, &connect.to_string(), "connect", deadline).await?;
        let subscribe = json!({"id": 2, "subscribe": {"channel": self.channels[room]}});
        command(&mut ws, 2, &subscribe.to_string(), "subscribe", deadline).await?;
        Ok(ws)
    }

    async fn send(
        &self,
        conn: &mut Conn,
        _s: usize,
        _n: u64,
        room: usize,
        body: &str,
    ) -> Result<Uuid, String> {
        let id = Uuid::new_v4();
        let payload = json!({"channel": self.channels[room], "data": {"id": id, "body": body}});
        let bytes = serde_json::to_vec(&payload).map_err(|_| "encode".to_owned())?;
        match conn
            .post_json("/api/publish", Some(&self.api_key), Bytes::from(bytes))
            .await
        {
            Ok((st, b)) if st.is_success() => match serde_json::from_slice::<ApiReply>(&b) {
                Ok(ApiReply { error: None }) => Ok(id),
                Ok(ApiReply { error: Some(e) }) => Err(format!("api-error-{}", e.code)),
                Err(_) => Err("bad-answer".to_owned()),
            },
            Ok((st, _)) => Err(st.as_u16().to_string()),
            Err(e) => Err(e.kind().to_owned()),
        }
    }

    fn read_frame(&self, text: &str, ids: &mut Vec<Uuid>) -> Option<&'static str> {
        read_frame(text, ids)
    }
}

/// The answer of a server API call.
#[derive(Deserialize)]
struct ApiReply {
    #[serde(default)]
    error: Option<ProtoError>,
}

#[derive(Deserialize)]
struct ProtoError {
    #[serde(default)]
    code: u32,
}

/// One reply of the client protocol (one line of a frame): a command's answer
/// (`id` > 0), a push (`id` 0), or a ping (`id` 0 and nothing else).
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(default)]
    id: u32,
    #[serde(default)]
    error: Option<ProtoError>,
    #[serde(default, borrow)]
    push: Option<Push<'a>>,
    #[serde(default)]
    connect: Option<IgnoredAny>,
    #[serde(default)]
    subscribe: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(default, borrow, rename = "pub")]
    publication: Option<Publication<'a>>,
}

#[derive(Deserialize)]
struct Publication<'a> {
    #[serde(default, borrow)]
    data: Option<PubData<'a>>,
}

#[derive(Deserialize)]
struct PubData<'a> {
    #[serde(default, borrow)]
    id: Option<&'a str>,
}

/// The ids of the publications in a frame go to `ids`; `Some("{}")` (the pong)
/// when the frame holds a ping.
fn read_frame(text: &str, ids: &mut Vec<Uuid>) -> Option<&'static str> {
    let mut ping = false;
    for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
        let Ok(r) = serde_json::from_str::<Reply<'_>>(line) else {
            continue;
        };
        match r.push {
            Some(p) => ids.extend(p.publication.and_then(|p| p.data?.id?.parse::<Uuid>().ok())),
            None if r.id == 0 && r.error.is_none() => ping = true,
            None => {}
        }
    }
    ping.then_some("{}")
}

/// Sends one command and waits for its reply (answering pings meanwhile); the
/// error is the key the failure is counted under.
async fn command(
    ws: &mut Ws,
    id: u32,
    frame: &str,
    what: &str,
    deadline: Instant,
) -> Result<(), String> {
    ws.send(Message::text(frame.to_owned()))
        .await
        .map_err(|_| format!("{what}-send"))?;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err(format!("{what}-timeout")),
            Ok(None) => return Err(format!("{what}-eof")),
            Ok(Some(Err(_))) => return Err(format!("{what}-ws-error")),
            Ok(Some(Ok(m))) => m,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(c) => {
                return Err(format!(
                    "{what}-closed-{}",
                    c.map_or(0, |c| u16::from(c.code))
                ));
            }
            _ => continue,
        };
        for line in text.as_str().split('\n') {
            let Ok(r) = serde_json::from_str::<Reply<'_>>(line) else {
                continue;
            };
            if r.id == 0 && r.push.is_none() && r.error.is_none() {
                ws.send(Message::text("{}"))
                    .await
                    .map_err(|_| format!("{what}-pong-send"))?;
                continue;
            }
            if r.id != id {
                continue;
            }
            if let Some(e) = r.error {
                return Err(format!("{what}-error-{}", e.code));
            }
            if r.connect.is_some() || r.subscribe.is_some() {
                return Ok(());
            }
            return Err(format!("{what}-bad-reply"));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn publications_are_read_from_every_line_and_pings_answered() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let frame = format!(
            "{}\n{}\n{{}}",
            json!({"push": {"channel": "lg-0", "pub": {"data": {"id": a, "body": "x"}}}}),
            json!({"push": {"channel": "lg-0", "pub": {"data": {"id": b, "body": "y"}, "offset": 3}}}),
        );
        let mut ids = Vec::new();
        assert_eq!(read_frame(&frame, &mut ids), Some("{}"));
        assert_eq!(ids, vec![a, b]);
    }

    #[test]
    fn replies_and_other_pushes_are_neither_deliveries_nor_pings() {
        let mut ids = Vec::new();
        for f in [
            r#"{"id":2,"subscribe":{}}"#,
            r#"{"id":1,"error":{"code":103,"message":"permission denied"}}"#,
            r#"{"push":{"channel":"lg-0","join":{"info":{"user":"u"}}}}"#,
            r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#,
            "not json",
        ] {
            assert_eq!(read_frame(f, &mut ids), None, "{f}");
        }
        assert!(ids.is_empty());
    }

    #[test]
    fn api_errors_come_in_a_200() {
        let r: ApiReply =
            serde_json::from_str(r#"{"error":{"code":102,"message":"unknown channel"}}"#).unwrap();
        assert_eq!(r.error.map(|e| e.code), Some(102));
        let r: ApiReply = serde_json::from_str(r#"{"result":{}}"#).unwrap();
        assert!(r.error.is_none());
    }
}
