//! A client of the HTTP API, and the commands most tests start with.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use uuid::Uuid;

/// The password every test user registers with.
pub const PASSWORD: &str = "correct horse battery";

/// A response: status, headers, JSON body (`Value::Null` when the body is not JSON),
/// and the raw text (to look for leaks).
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Res {
    /// Asserts the documented error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.text
        );
        assert_eq!(
            self.body["error"]["code"], code,
            "unexpected error code, body: {}",
            self.text
        );
        assert!(
            self.body["error"]["message"].is_string(),
            "error without message: {}",
            self.text
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "unexpected status, body: {}",
            self.text
        );
        &self.body
    }

    /// `(status, error code)`; the code is empty for a success.
    pub fn outcome(&self) -> (u16, String) {
        (
            self.status,
            self.body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    /// The `field` of the body, a UUID.
    #[track_caller]
    pub fn uuid(&self, field: &str) -> Uuid {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {}", self.text))
            .parse()
            .expect("uuid")
    }
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

/// A client of one service's HTTP API at `base`.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    /// `http://host:port`
    pub base: String,
}

impl Api {
    pub fn new(http: reqwest::Client, base: impl Into<String>) -> Api {
        Api {
            http,
            base: base.into(),
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req).await
    }

    /// A request with a raw body and an explicit (or no) `Content-Type`.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Res {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, ct);
        }
        read(req.body(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Res {
        self.request(Method::GET, path, Some(token), None, &[])
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Res {
        self.request(Method::POST, path, token, Some(body), &[])
            .await
    }

    pub async fn post_empty(&self, path: &str, token: &str) -> Res {
        self.request(Method::POST, path, Some(token), None, &[])
            .await
    }

    // ---- commands (command-api) ----

    /// Registers `username` (201 expected) and returns its tokens.
    pub async fn register(&self, username: &str) -> TestUser {
        let res = self
            .post(
                "/v1/auth/register",
                None,
                json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        let body = res.assert_status(201);
        TestUser {
            id: res.uuid("user_id"),
            username: username.to_owned(),
            token: body["access_token"].as_str().expect("token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Creates a group room from `room` (`name`, `visibility`, ...; 201 expected);
    /// returns its id.
    pub async fn create_room_with(&self, owner: &TestUser, room: Value) -> Uuid {
        let res = self.post("/v1/rooms", Some(&owner.token), room).await;
        res.assert_status(201);
        res.uuid("room_id")
    }

    /// Creates a group room named `name` (201 expected); returns its id.
    pub async fn create_room(&self, owner: &TestUser, name: &str, visibility: &str) -> Uuid {
        self.create_room_with(owner, json!({ "name": name, "visibility": visibility }))
            .await
    }

    pub async fn join(&self, user: &TestUser, room: Uuid) -> Res {
        self.post_empty(&format!("/v1/rooms/{room}/join"), &user.token)
            .await
    }

    /// `by` invites `who` into the room.
    pub async fn invite(&self, by: &TestUser, room: Uuid, who: &TestUser) -> Res {
        self.post(
            &format!("/v1/rooms/{room}/invites"),
            Some(&by.token),
            json!({ "user_id": who.id }),
        )
        .await
    }

    /// `by` removes `who` from the room.
    pub async fn kick(&self, by: &TestUser, room: Uuid, who: Uuid) -> Res {
        self.request(
            Method::DELETE,
            &format!("/v1/rooms/{room}/members/{who}"),
            Some(&by.token),
            None,
            &[],
        )
        .await
    }

    /// `by` bans `who` from the room (`POST /v1/rooms/{room}/bans`).
    pub async fn ban(&self, by: &TestUser, room: Uuid, who: Uuid) -> Res {
        self.post(
            &format!("/v1/rooms/{room}/bans"),
            Some(&by.token),
            json!({ "user_id": who }),
        )
        .await
    }

    /// `by` lifts the ban of `who` (`DELETE /v1/rooms/{room}/bans/{who}`).
    pub async fn unban(&self, by: &TestUser, room: Uuid, who: Uuid) -> Res {
        self.request(
            Method::DELETE,
            &format!("/v1/rooms/{room}/bans/{who}"),
            Some(&by.token),
            None,
            &[],
        )
        .await
    }

    /// Sends `body` with a fresh `client_msg_id`.
    pub async fn send_message(&self, user: &TestUser, room: Uuid, body: &str) -> Res {
        self.post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&user.token),
            json!({ "client_msg_id": Uuid::new_v4().to_string(), "body": body }),
        )
        .await
    }
}

async fn read(req: reqwest::RequestBuilder) -> Res {
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body read");
    Res {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// A short unique suffix for names that must not collide across tests.
pub fn unique() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}
