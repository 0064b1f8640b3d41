//! The console over plain HTTP, as an attacker would meet it: who may sign
//! in, what the session cookie is, CSRF tokens and cross-site forms, the
//! wall between tenants, a revoked key's session, escaping, and the headers
//! every page carries. The pages in a real browser are in
//! `console_browser.rs`.

use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode, redirect};

use crate::helpers::{BY_VALUE, Server, rhai_bundle};

/// A browser-like client that does not follow redirects, so each answer
/// can be looked at.
fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(server: &Server, key: &str) -> Response {
    client()
        .post(server.url("/console/sign-in"))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap()
}

/// A signed-in session: its cookie, and the CSRF token from a page.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    async fn start(server: &Server, key: &str) -> Session {
        let res = sign_in(server, key).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        let page = get(server, &cookie, "/console/policies").await;
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        Session { cookie, csrf }
    }

    async fn post(&self, server: &Server, path: &str, form: &[(&str, &str)]) -> Response {
        client()
            .post(server.url(path))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

async fn get(server: &Server, cookie: &str, path: &str) -> Response {
    client()
        .get(server.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

fn location(res: &Response) -> &str {
    res.headers()[LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn only_editor_and_admin_keys_sign_in_and_the_cookie_is_strict() {
    let server = Server::start();
    let keys = server.tenant("acme").await;

    let home = client().get(server.url("/console")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&home), "/console/sign-in");
    let page = client()
        .get(server.url("/console/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script may run: {csp}");

    let decide = sign_in(&server, &keys.decide).await;
    assert_eq!(decide.status(), StatusCode::FORBIDDEN);
    assert!(decide.headers().get(SET_COOKIE).is_none());
    assert!(decide.text().await.unwrap().contains("decide key"));
    let unknown = sign_in(&server, "mk_editor_nope").await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(unknown.headers().get(SET_COOKIE).is_none());

    let editor = sign_in(&server, &keys.editor).await;
    assert_eq!(editor.status(), StatusCode::SEE_OTHER);
    let cookie = editor.headers()[SET_COOKIE].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(&keys.editor),
        "the key itself is never the cookie"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let behind_tls = client()
        .post(server.url("/console/sign-in"))
        .header("X-Forwarded-Proto", "https")
        .form(&[("key", keys.editor.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = behind_tls.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("Secure"), "behind a TLS proxy: {cookie}");
}

#[tokio::test]
async fn forms_need_the_sessions_token_and_the_same_site() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    server.upload_rhai(&keys.editor, "hero", BY_VALUE).await;
    let session = Session::start(&server, &keys.editor).await;
    let live = || async {
        let policies: serde_json::Value = server
            .get("/v1/policies/hero", &keys.editor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        policies["live_version"].as_u64()
    };

    let path = "/console/policies/hero/activate";
    let missing = session.post(&server, path, &[("version", "1")]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = session
        .post(
            &server,
            path,
            &[("version", "1"), ("csrf", &"0".repeat(64))],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let cross_site = client()
        .post(server.url(path))
        .header(COOKIE, &session.cookie)
        .header("Sec-Fetch-Site", "cross-site")
        .form(&[("version", "1"), ("csrf", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(live().await, Some(2), "nothing refused changed anything");

    let done = session
        .post(&server, path, &[("version", "1"), ("csrf", &session.csrf)])
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(live().await, Some(1));
}

#[tokio::test]
async fn a_session_sees_only_its_tenant_and_its_role() {
    let server = Server::start();
    let (acme, other) = (server.tenant("acme").await, server.tenant("other").await);
    server
        .upload_rhai(&other.editor, "secret-point", BY_VALUE)
        .await;
    let session = Session::start(&server, &acme.editor).await;

    for path in [
        "/console/policies/secret-point",
        "/console/policies/secret-point/versions/1",
    ] {
        let res = get(&server, &session.cookie, path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!res.text().await.unwrap().contains("fn decide"));
    }
    let list = get(&server, &session.cookie, "/console/policies").await;
    assert!(!list.text().await.unwrap().contains("secret-point"));
    let keys = get(&server, &session.cookie, "/console/keys").await;
    assert_eq!(
        keys.status(),
        StatusCode::FORBIDDEN,
        "keys need an admin key"
    );
    let admin = Session::start(&server, &acme.admin).await;
    let keys = get(&server, &admin.cookie, "/console/keys").await;
    assert_eq!(keys.status(), StatusCode::OK);
}

#[tokio::test]
async fn policy_text_is_shown_as_text() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let source = format!("// <script>alert('x')</script>\n{BY_VALUE}");
    let res = server
        .upload(&keys.editor, "hero", &rhai_bundle(&source))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let session = Session::start(&server, &keys.editor).await;
    let page = get(
        &server,
        &session.cookie,
        "/console/policies/hero/versions/1",
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn a_revoked_key_or_a_sign_out_ends_the_session() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let editor = Session::start(&server, &keys.editor).await;
    let admin = Session::start(&server, &keys.admin).await;

    let listed: serde_json::Value = server
        .get("/v1/keys", &keys.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let editor_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "editor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = admin
        .post(
            &server,
            &format!("/console/keys/{editor_id}/revoke"),
            &[("csrf", &admin.csrf)],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let after = get(&server, &editor.cookie, "/console/policies").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after), "/console/sign-in");

    let out = admin
        .post(&server, "/console/sign-out", &[("csrf", &admin.csrf)])
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = get(&server, &admin.cookie, "/console/keys").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after), "/console/sign-in");
}

#[tokio::test]
async fn the_console_counts_in_the_tenants_rate_and_confirms_only_real_things() {
    let server = Server::start_with(&["--tenant-rate-limit", "5"]);
    let keys = server.tenant("acme").await;
    let admin = Session::start(&server, &keys.admin).await;

    // A confirmation page only for what exists: no form aimed elsewhere.
    for path in [
        "/console/experiments/..%2Fkeys%2Fkey_x%2Frevoke%3F/stop",
        "/console/experiments/nope/stop",
        "/console/keys/key_nope/revoke",
    ] {
        let res = get(&server, &admin.cookie, path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }

    // Pages past the tenant's rate get its 429, as the API does.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            get(&server, &admin.cookie, "/console/policies")
                .await
                .status(),
        );
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}
