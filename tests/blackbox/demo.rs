//! `moment serve --demo`: a ready tenant with the reference policies.

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
