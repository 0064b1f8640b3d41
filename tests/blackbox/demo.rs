//! `moment serve --demo`: a ready tenant with the reference policies.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Server, ids};

#[tokio::test]
async fn demo_serves_every_reference_policy_and_rekeys_on_restart() {
    let server = Server::start_with(&["--demo"]);
    let decide = server.banner_value("decide:");
    assert!(decide.starts_with("mk_decide_"));
    let at_risk = json!({"customer_id": "c-42", "stage": "at-risk", "channel": "call-center",
                         "attributes": {"tenure_months": 40}, "context": {"reason": "price"}});
    for point in ["retention-call", "retention-call-wasm"] {
        let mut ask = at_risk.clone();
        ask["point"] = json!(point);
        let answer = server.decide_ok(&decide, &ask).await;
        assert_eq!(
            (answer["fallback"].as_bool(), ids(&answer)[0].as_str()),
            (Some(false), "retention-30"),
            "{point}"
        );
    }
    let kiosk = json!({"point": "kiosk-checkout", "customer_id": "c-7", "channel": "kiosk",
                       "context": {"basket": [{"sku": "tent-2p", "category": "camping", "price": 199.0}]}});
    assert_eq!(server.decide_ok(&decide, &kiosk).await["fallback"], false);
    let web = json!({"point": "web-hero", "customer_id": "anon-1", "channel": "web",
                     "context": {"section": "home"}, "limit": 1});
    assert_eq!(ids(&server.decide_ok(&decide, &web).await), ["spring-sale"]);

    // A restart keeps the policies (still version 1) and prints fresh keys;
    // the old keys keep working.
    let again = server.kill_and_restart_with(&["--demo"], |_| {});
    let fresh = again.banner_value("decide:");
    assert_ne!(fresh, decide);
    let mut ask = at_risk.clone();
    ask["point"] = json!("retention-call");
    for key in [&decide, &fresh] {
        assert_eq!(again.decide_ok(key, &ask).await["policy"]["version"], 1);
    }
}

/// Every server serves the JavaScript client; only the demo serves the
/// example pages that use it.
#[tokio::test]
async fn the_client_is_served_by_every_server_and_the_examples_by_the_demo() {
    let get = |server: &Server, path: &str| server.client.get(server.url(path)).send();
    for server in [Server::start(), Server::start_with(&["--demo"])] {
        let client = get(&server, "/sdk/moment.js").await.unwrap();
        assert_eq!(client.status(), StatusCode::OK);
        let header = |name: &str| client.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "text/javascript; charset=utf-8");
        assert_eq!(header("access-control-allow-origin"), "*");
        assert!(
            client
                .text()
                .await
                .unwrap()
                .contains("export function createClient(")
        );
        let types = get(&server, "/sdk/moment.d.ts").await.unwrap();
        assert_eq!(types.status(), StatusCode::OK);
        assert!(
            types
                .text()
                .await
                .unwrap()
                .contains("export interface ClientOptions")
        );
    }
    let plain = Server::start();
    for path in ["/examples/web/", "/examples/kiosk/"] {
        assert_eq!(
            get(&plain, path).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
    let demo = Server::start_with(&["--demo"]);
    for (path, title) in [
        ("/examples/web/", "a web page's hero offer"),
        ("/examples/web/thanks.html", "thanks"),
        ("/examples/kiosk/", "a self-checkout kiosk"),
    ] {
        let page = get(&demo, path).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self' 'unsafe-inline'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains(title) && html.contains("/sdk/moment.js"),
            "{path}"
        );
    }
    let bare = get(&demo, "/examples/web").await.unwrap();
    assert_eq!(
        bare.url().path(),
        "/examples/web/",
        "redirected to the page"
    );
}
