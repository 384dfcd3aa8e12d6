//! Single sign-on end to end against a real OpenID Connect provider (ORY Hydra, started by
//! `scripts/test.sh` with `scripts/hydra.sh`: `OIDC_ISSUER`, `OIDC_CLIENT_ID`,
//! `OIDC_CLIENT_SECRET`, `OIDC_REDIRECT_URI`, `HYDRA_ADMIN_URL`). The test plays the browser
//! and the provider's login and consent screens (through Hydra's admin API).

use crate::helpers::TestApp;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use uuid::Uuid;

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    admin: String,
}

fn provider() -> Option<Provider> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(issuer) = var("OIDC_ISSUER") else {
        eprintln!(
            "\n*** OIDC test NOT RUN: OIDC_ISSUER is not set. `scripts/test.sh` starts Hydra \
             (scripts/hydra.sh) and sets it.\n"
        );
        return None;
    };
    Some(Provider {
        issuer,
        client_id: var("OIDC_CLIENT_ID")?,
        client_secret: var("OIDC_CLIENT_SECRET")?,
        redirect_uri: var("OIDC_REDIRECT_URI")?,
        admin: var("HYDRA_ADMIN_URL")?,
    })
}

async fn app_for(p: &Provider) -> TestApp {
    let (issuer, id, secret, redirect) = (
        p.issuer.clone(),
        p.client_id.clone(),
        p.client_secret.clone(),
        p.redirect_uri.clone(),
    );
    TestApp::spawn_with(move |s| {
        s.oidc.oidc_issuer = issuer;
        s.oidc.oidc_client_id = id;
        s.oidc.oidc_client_secret = secret;
        s.oidc.oidc_redirect_uri = redirect;
        s.oidc.oidc_provider_name = "Hydra".into();
    })
    .await
}

/// A browser: follows nothing by itself, keeps cookies.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// GETs `url`; returns the status and the `Location` it points to.
    async fn get(&mut self, url: &str) -> (u16, String) {
        let mut req = self.http.get(url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(COOKIE, jar.join("; "));
        }
        let res = req.send().await.unwrap();
        for c in res.headers().get_all(SET_COOKIE) {
            let pair = c.to_str().unwrap().split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies
                    .insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let location = res
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (res.status().as_u16(), location)
    }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Accepts a login or consent challenge as the provider's screen would; returns where the
/// browser goes next.
async fn accept(p: &Provider, kind: &str, challenge: &str, body: Value) -> String {
    let res = reqwest::Client::new()
        .put(format!(
            "{}/admin/oauth2/auth/requests/{kind}/accept?{kind}_challenge={challenge}",
            p.admin.trim_end_matches('/')
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "accept {kind}");
    let v: Value = res.json().await.unwrap();
    v["redirect_to"].as_str().unwrap().to_owned()
}

/// Runs the browser's part of a sign-in as `subject`: from our `start` to the provider's
/// redirect back. Returns the `code` and `state` it carries.
async fn sign_in_at_provider(
    app: &TestApp,
    p: &Provider,
    subject: &str,
    username: &str,
) -> (String, String) {
    let mut browser = Browser::new();
    let (status, to_provider) = browser
        .get(&format!("{}/v1/auth/oidc/start", app.base))
        .await;
    assert_eq!(status, 302);
    assert!(to_provider.starts_with(&p.issuer), "{to_provider}");
    assert_eq!(
        query_param(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query_param(&to_provider, "nonce").is_some());
    let (_, to_login) = browser.get(&to_provider).await;
    let login = query_param(&to_login, "login_challenge").expect("login challenge");
    let next = accept(
        p,
        "login",
        &login,
        json!({ "subject": subject, "remember": false }),
    )
    .await;
    let (_, to_consent) = browser.get(&next).await;
    let consent = query_param(&to_consent, "consent_challenge").expect("consent challenge");
    let next = accept(
        p,
        "consent",
        &consent,
        json!({
            "grant_scope": ["openid", "profile", "email"],
            "session": { "id_token": { "preferred_username": username, "name": "Alice Example" } }
        }),
    )
    .await;
    let (_, back) = browser.get(&next).await;
    assert!(back.starts_with(&p.redirect_uri), "{back}");
    (
        query_param(&back, "code").expect("code"),
        query_param(&back, "state").expect("state"),
    )
}

async fn callback(app: &TestApp, code: &str, state: &str) -> test_support::Res {
    app.request(
        reqwest::Method::GET,
        &format!("/v1/auth/oidc/callback?code={code}&state={state}"),
        None,
        None,
        &[("accept", "application/json")],
    )
    .await
}

#[tokio::test]
async fn a_user_signs_in_through_the_provider_and_is_linked_by_subject() {
    let Some(p) = provider() else { return };
    let app = app_for(&p).await;
    let info = app
        .request(reqwest::Method::GET, "/v1/auth/oidc", None, None, &[])
        .await;
    assert_eq!(info.assert_status(200)["name"], "Hydra");

    let subject = format!("sub-{}", Uuid::new_v4());
    let (code, state) = sign_in_at_provider(&app, &p, &subject, "Alice").await;
    let res = callback(&app, &code, &state).await;
    let tokens = res.assert_status(200).clone();
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let user = tokens["user_id"].as_str().unwrap().to_owned();
    // A session like any other: its token works.
    let sessions = app.get("/v1/me/sessions", &token).await;
    assert_eq!(
        sessions.assert_status(200)["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The account was created with the provider's preferred username.
    let stream = format!("user-{user}");
    assert_eq!(app.count_of(&stream, "UserRegistered").await, 1);
    let name: String = sqlx::query_scalar("SELECT username FROM credentials WHERE user_id = $1")
        .bind(Uuid::parse_str(&user).unwrap())
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(name, "alice");

    // The callback replayed: its state is spent.
    callback(&app, &code, &state)
        .await
        .assert_error(400, "invalid_state");
    // A tampered state is unknown.
    callback(&app, &code, &format!("{state}x"))
        .await
        .assert_error(400, "invalid_state");
    // The code replayed with a fresh sign-in's state: the provider refuses it.
    let (_, fresh_state) = sign_in_at_provider(&app, &p, &subject, "Alice").await;
    callback(&app, &code, &fresh_state)
        .await
        .assert_error(401, "oidc_refused");

    // Signing in again as the same subject is the same account; another subject with the
    // same name is another account (never linked by name or e-mail).
    let (code, state) = sign_in_at_provider(&app, &p, &subject, "Alice").await;
    let again = callback(&app, &code, &state).await;
    assert_eq!(again.assert_status(200)["user_id"], user.as_str());
    let other = format!("sub-{}", Uuid::new_v4());
    let (code, state) = sign_in_at_provider(&app, &p, &other, "Alice").await;
    let stranger = callback(&app, &code, &state).await;
    assert_ne!(stranger.assert_status(200)["user_id"], user.as_str());
    app.cleanup().await;
}

#[tokio::test]
async fn an_id_token_signed_by_a_key_the_provider_does_not_list_is_refused() {
    let Some(p) = provider() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (pem, der) = (dir.path().join("key.pem"), dir.path().join("key.der"));
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&["genrsa", "-traditional", "-out", "key.pem", "2048"]);
    run(&[
        "rsa",
        "-in",
        "key.pem",
        "-traditional",
        "-outform",
        "DER",
        "-out",
        "key.der",
    ]);
    assert!(pem.exists());
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&std::fs::read(&der).unwrap());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "iss": p.issuer, "aud": [p.client_id], "sub": "forged", "iat": now, "exp": now + 300,
        "nonce": "n-1",
    });
    for kid in [Some("not-a-key-of-the-provider".to_owned()), None] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = kid.clone();
        let forged = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let settings = command_api::configuration::OidcSettings {
            oidc_issuer: p.issuer.clone(),
            oidc_client_id: p.client_id.clone(),
            oidc_client_secret: p.client_secret.clone(),
            oidc_redirect_uri: p.redirect_uri.clone(),
            oidc_provider_name: "Hydra".into(),
        };
        let oidc = command_api::oidc::Oidc::new(settings).unwrap();
        let verdict = oidc.verify_raw(&forged, "n-1").await;
        assert!(
            matches!(verdict, Err(command_api::oidc::OidcError::InvalidToken(_))),
            "kid {kid:?}: {verdict:?}"
        );
    }
}
