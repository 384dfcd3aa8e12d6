//! The web client's files served at `/`: caching by kind of file, the security headers,
//! compression, and the JSON errors around them.

use crate::helpers::TestApp;
use reqwest::header;
use serde_json::Value;

/// A built client as Vite writes it: `index.html`, hashed assets, a top-level icon.
fn built_client() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><script type=module src=/assets/index-3f2a.js></script>",
    )
    .unwrap();
    // Large and repetitive enough to be worth compressing.
    let js = "export const greeting = 'hello, world';\n".repeat(200);
    std::fs::write(dir.path().join("assets/index-3f2a.js"), js).unwrap();
    std::fs::write(dir.path().join("favicon.svg"), "<svg/>").unwrap();
    dir
}

fn header(res: &reqwest::Response, name: header::HeaderName) -> &str {
    res.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn the_client_is_served_with_caching_by_kind_and_a_strict_csp() {
    let dir = built_client();
    let path = dir.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.web_dir = path).await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.query)).send();

    for page in ["/", "/index.html"] {
        let res = get(page).await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        assert!(header(&res, header::CONTENT_TYPE).starts_with("text/html"));
        // Revalidated on every load: a new build shows at once.
        assert_eq!(header(&res, header::CACHE_CONTROL), "no-cache");
        let csp = header(&res, header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header(&res, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header(&res, header::REFERRER_POLICY), "no-referrer");
        assert!(res.text().await.unwrap().contains("/assets/index-3f2a.js"));
    }

    // Hashed assets are immutable for a year, compressed when the browser accepts it.
    let res = app
        .http
        .get(format!("{}/assets/index-3f2a.js", app.query))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert!(header(&res, header::CONTENT_TYPE).contains("javascript"));
    assert_eq!(header(&res, header::CONTENT_ENCODING), "gzip");
    assert!(res.bytes().await.unwrap().len() < 8_000 / 4);
    // Revalidation by date answers 304 with no body.
    let res = get("/assets/index-3f2a.js").await.unwrap();
    let modified = header(&res, header::LAST_MODIFIED).to_owned();
    let res = app
        .http
        .get(format!("{}/assets/index-3f2a.js", app.query))
        .header(header::IF_MODIFIED_SINCE, modified)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Top-level files are served and revalidated.
    let res = get("/favicon.svg").await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, header::CACHE_CONTROL), "no-cache");

    // What is not there is the API's JSON 404, not an HTML page; nothing escapes the
    // directory.
    for missing in [
        "/assets/nope.js",
        "/assets/../index.html.bak",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/nope.html",
    ] {
        let res = get(missing).await.unwrap();
        assert_eq!(res.status(), 404, "{missing}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{missing}");
    }
    // The API next to it is unchanged.
    let res = get("/v1/me").await.unwrap();
    assert_eq!(res.status(), 401);
    app.cleanup().await;
}

#[tokio::test]
async fn without_a_built_client_the_root_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.web_dir = path).await;
    let res = app
        .http
        .get(format!("{}/", app.query))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "web_client_not_built");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scripts/web.sh"),
        "{body}"
    );
    app.cleanup().await;
}
