//! WASM policies over HTTP: reference policies, agreement with Rhai, and
//! uploads outside the ABI.

use moment_policy_artifacts::{
    CORPUS_DIR, KIOSK_BASKET_BUNDLE, KIOSK_BASKET_CASES, KIOSK_BASKET_WASM, TELCO_RETENTION_BUNDLE,
    TELCO_RETENTION_CASES, TELCO_RETENTION_RHAI, TELCO_RETENTION_WASM,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Server, expect, ids, rhai_upload, wasm_upload};

fn corpus(name: &str) -> Vec<u8> {
    wat::parse_file(format!("{CORPUS_DIR}/{name}.wat")).unwrap()
}

fn request(case: &Value, point: &str) -> Value {
    let mut request = case["request"].clone();
    request["point"] = json!(point);
    request
}

#[tokio::test]
async fn reference_wasm_policies_rank_every_case_as_expected() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    for (point, bundle, module, cases) in [
        (
            "retention-call",
            TELCO_RETENTION_BUNDLE,
            TELCO_RETENTION_WASM,
            TELCO_RETENTION_CASES,
        ),
        (
            "kiosk-checkout",
            KIOSK_BASKET_BUNDLE,
            KIOSK_BASKET_WASM,
            KIOSK_BASKET_CASES,
        ),
    ] {
        expect(
            server
                .upload(&keys.editor, point, &wasm_upload(bundle, module))
                .await,
            StatusCode::CREATED,
        )
        .await;
        let cases: Vec<Value> = serde_json::from_str(cases).unwrap();
        assert!(cases.len() >= 8);
        for case in &cases {
            let answer = server.decide_ok(&keys.decide, &request(case, point)).await;
            assert_eq!(answer["fallback"], false, "{}", case["name"]);
            assert_eq!(json!(ids(&answer)), case["expect"], "{}", case["name"]);
        }
    }
}

#[tokio::test]
async fn rhai_and_wasm_telco_policies_agree_on_every_case() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let wasm = wasm_upload(TELCO_RETENTION_BUNDLE, TELCO_RETENTION_WASM);
    expect(
        server.upload(&keys.editor, "telco-wasm", &wasm).await,
        StatusCode::CREATED,
    )
    .await;
    let rhai = rhai_upload(TELCO_RETENTION_BUNDLE, TELCO_RETENTION_RHAI);
    expect(
        server.upload(&keys.editor, "telco-rhai", &rhai).await,
        StatusCode::CREATED,
    )
    .await;

    let cases: Vec<Value> = serde_json::from_str(TELCO_RETENTION_CASES).unwrap();
    for case in &cases {
        let mut all = request(case, "telco-wasm");
        all["limit"] = json!(100);
        let from_wasm = server.decide_ok(&keys.decide, &all).await;
        all["point"] = json!("telco-rhai");
        let from_rhai = server.decide_ok(&keys.decide, &all).await;
        assert_eq!(ids(&from_wasm), ids(&from_rhai), "{}", case["name"]);
        let scores = |d: &Value| {
            d["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["score"].as_f64().unwrap())
                .collect::<Vec<_>>()
        };
        for (w, r) in scores(&from_wasm).into_iter().zip(scores(&from_rhai)) {
            assert!((w - r).abs() < 1e-9, "{}: {w} vs {r}", case["name"]);
        }
    }
}

#[tokio::test]
async fn modules_outside_the_abi_are_refused_at_upload() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let refused = |module: Vec<u8>| wasm_upload(TELCO_RETENTION_BUNDLE, &module);
    let problem = expect(
        server
            .upload(&keys.editor, "p", &refused(corpus("wasi_import")))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("wasi_snapshot_preview1.fd_write"),
        "{problem}"
    );
    let problem = expect(
        server
            .upload(&keys.editor, "p", &refused(corpus("no_exports")))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("memory"),
        "{problem}"
    );
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    expect(
        server.upload(&keys.editor, "p", &refused(random)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut not_base64 = wasm_upload(TELCO_RETENTION_BUNDLE, b"");
    not_base64["wasm"] = json!("%%% not base64 %%%");
    expect(
        server.upload(&keys.editor, "p", &not_base64).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect(
        server
            .get("/v1/policies/p", &keys.editor)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_module_uploads_as_a_multipart_form_and_a_bad_form_changes_nothing() {
    let server = Server::start();
    let keys = server.tenant("acme").await;
    let bundle: Value = serde_json::from_str(KIOSK_BASKET_BUNDLE).unwrap();
    let url = server.url("/v1/policies/kiosk/versions");
    let send = |form: reqwest::multipart::Form, key: &str| {
        server
            .client
            .post(&url)
            .bearer_auth(key)
            .multipart(form)
            .send()
    };
    let module =
        || reqwest::multipart::Part::bytes(KIOSK_BASKET_WASM.to_vec()).file_name("policy.wasm");
    let form = |bundle: String| {
        reqwest::multipart::Form::new()
            .part("module", module())
            .text("bundle", bundle)
    };
    let good =
        json!({"catalog": bundle["catalog"], "fallback": bundle["fallback"], "activate": true});

    // The decide key may not upload; a form without its module, with an
    // unknown part or a bad bundle is refused saying what to send.
    // (A small form: the 403 is answered before a body is read.)
    let small = reqwest::multipart::Form::new().text("bundle", good.to_string());
    let refused = send(small, &keys.decide).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let no_module = reqwest::multipart::Form::new().text("bundle", good.to_string());
    let body = expect(
        send(no_module, &keys.editor).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("`module`"),
        "{body}"
    );
    let extra = form(good.to_string()).text("source", "fn decide(ctx) { [] }");
    let body = expect(
        send(extra, &keys.editor).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("\"source\""),
        "{body}"
    );
    let bad_bundle = form(json!({"catalog": [], "engine": "wasm"}).to_string());
    let body = expect(
        send(bad_bundle, &keys.editor).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("`bundle`"),
        "{body}"
    );
    let garbage = reqwest::multipart::Form::new()
        .part(
            "module",
            reqwest::multipart::Part::bytes(b"not wasm".to_vec()),
        )
        .text("bundle", good.to_string());
    expect(
        send(garbage, &keys.editor).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let text = server
        .client
        .post(&url)
        .bearer_auth(&keys.editor)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    let body = expect(text, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("multipart/form-data"),
        "{body}"
    );
    let cut = server
        .client
        .post(&url)
        .bearer_auth(&keys.editor)
        .header("Content-Type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"module\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status(), StatusCode::BAD_REQUEST);
    let listed = server
        .get("/v1/policies", &keys.editor)
        .send()
        .await
        .unwrap();
    assert_eq!(expect(listed, StatusCode::OK).await, json!([]));

    // The module itself, beside its bundle: live, and deciding as in JSON.
    let created = expect(
        send(form(good.to_string()), &keys.editor).await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        created,
        json!({"name": "kiosk", "version": 1, "active": true})
    );
    let stored = server
        .get("/v1/policies/kiosk/versions/1", &keys.editor)
        .send()
        .await
        .unwrap();
    let stored = expect(stored, StatusCode::OK).await;
    assert_eq!(stored["wasm"]["size_bytes"], KIOSK_BASKET_WASM.len());
    let case = &serde_json::from_str::<Value>(KIOSK_BASKET_CASES).unwrap()[0];
    let decided = server
        .decide_ok(&keys.decide, &request(case, "kiosk"))
        .await;
    assert_eq!(json!(ids(&decided)), case["expect"]);
}
