//! The policy author's CLI, run as a user runs it: `moment policy test` on
//! the reference policies and on new ones, and push, pull, diff, list,
//! activate, decide, try and experiment results against a real server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Server, expect};

const TARGET: &str = "wasm32-unknown-unknown";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Adds the wasm32 target to the active toolchain if it is missing (once
/// per run), as a newcomer who builds WASM policies would.
fn wasm_target() {
    static ADDED: OnceLock<()> = OnceLock::new();
    ADDED.get_or_init(|| {
        let installed = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(workspace())
            .output()
            .expect("rustup is needed to build WASM policies");
        if !String::from_utf8_lossy(&installed.stdout).contains(TARGET) {
            let added = Command::new("rustup")
                .args(["target", "add", TARGET])
                .current_dir(workspace())
                .status()
                .unwrap();
            assert!(added.success(), "cannot add {TARGET}");
        }
    });
}

/// `moment ARGS` in `dir`, with only the server and key given here: no
/// MOMENT_* variable of the caller's, and a profiles file of the test's own
/// (none unless it writes one) rather than theirs. WASM
/// policies build into a target directory of their own.
fn moment(dir: &Path, args: &[&str], server: Option<(&Server, &str)>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_moment"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("MOMENT_URL")
        .env_remove("MOMENT_KEY")
        .env_remove("MOMENT_PROFILE")
        .env("MOMENT_PROFILES", dir.join("profiles.toml"))
        .env(
            "CARGO_TARGET_DIR",
            workspace().join("target").join("cli-policies"),
        );
    if let Some((server, key)) = server {
        command
            .env("MOMENT_URL", &server.base)
            .env("MOMENT_KEY", key);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `moment ARGS`, requiring success; returns stdout.
fn ok(dir: &Path, args: &[&str], server: Option<(&Server, &str)>) -> String {
    let output = moment(dir, args, server);
    assert!(
        output.status.success(),
        "moment {args:?} failed ({:?}):\n{}\n{}",
        output.status.code(),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn policy_test_passes_on_the_reference_policies() {
    wasm_target();
    let root = workspace();
    for (path, cases) in [
        ("policies/telco-retention", 13),
        ("policies/telco-retention/moment-rhai.toml", 13),
        ("policies/kiosk-basket", 10),
        ("policies/web-hero", 5),
    ] {
        let report = json_of(&ok(&root, &["policy", "test", path, "--json"], None));
        assert_eq!(report["failed"], 0, "{path}: {report}");
        assert_eq!(report["passed"], cases, "{path}: {report}");
    }
}

/// The Rhai twin of the telco policy, copied to a temporary directory.
fn telco_rhai_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = workspace().join("policies/telco-retention");
    for file in ["policy.rhai", "bundle.json", "cases.json"] {
        std::fs::copy(from.join(file), dir.path().join(file)).unwrap();
    }
    std::fs::copy(
        from.join("moment-rhai.toml"),
        dir.path().join("moment.toml"),
    )
    .unwrap();
    dir
}

#[test]
fn policy_test_fails_a_broken_case_with_a_readable_diff() {
    let dir = telco_rhai_copy();
    let cases_path = dir.path().join("cases.json");
    let mut cases: Vec<Value> = json_of(&std::fs::read_to_string(&cases_path).unwrap())
        .as_array()
        .unwrap()
        .clone();
    // The first case expects retention-20, plan-review, retention-10: swap the first two.
    let expect = cases[0]["expect"].as_array_mut().unwrap();
    expect.swap(0, 1);
    cases[0]["name"] = json!("a deliberately broken case");
    std::fs::write(&cases_path, serde_json::to_string(&cases).unwrap()).unwrap();

    let output = moment(dir.path(), &["policy", "test"], None);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("FAIL  a deliberately broken case"), "{text}");
    assert!(
        text.contains("expected  plan-review, retention-20, retention-10"),
        "{text}"
    );
    assert!(
        text.contains("ranking differs (- expected, + got):"),
        "{text}"
    );
    assert!(
        text.contains("got       retention-20 (9.000000), plan-review (7.800000), retention-10"),
        "{text}"
    );
    assert!(text.contains("+ retention-20"), "{text}");
    assert!(text.contains("- retention-20"), "{text}");
    assert!(text.contains("13 cases: 12 passed, 1 failed"), "{text}");
    assert!(stderr(&output).contains("1 of 13 cases failed"));

    let report = json_of(&stdout(&moment(
        dir.path(),
        &["policy", "test", "--json"],
        None,
    )));
    assert_eq!(report["failed"], 1);
    let broken = &report["cases"][0];
    assert_eq!(broken["passed"], false);
    assert_eq!(broken["actions"][0]["id"], "retention-20");
}

#[test]
fn policy_test_checks_scores_fallbacks_and_history_and_explains() {
    let dir = telco_rhai_copy();
    // A policy that throws for one caller, and cases of every expectation kind.
    let policy = std::fs::read_to_string(dir.path().join("policy.rhai")).unwrap();
    std::fs::write(
        dir.path().join("policy.rhai"),
        policy.replacen(
            "fn decide(ctx) {",
            "fn decide(ctx) {\n    if ctx.customer_id == \"thrower\" { throw \"boom\"; }",
            1,
        ),
    )
    .unwrap();
    let request = json!({"customer_id": "c-1", "stage": "at-risk", "channel": "call-center",
        "attributes": {"tenure_months": 14}, "context": {"reason": "price"}, "limit": 3});
    let report = json_of(&ok(
        dir.path(),
        &["policy", "test", "--json", "--explain", "--bench"],
        None,
    ));
    let first = &report["cases"][0];
    let scored: Vec<Value> = first["actions"].as_array().unwrap().clone();
    assert!(
        first["bench"]["operations"].as_u64().unwrap() > 0,
        "{first}"
    );
    assert!(first["explain"].as_array().unwrap().len() > 3, "{first}");
    let cases = json!([
        {"name": "scores within a tolerance", "request": request,
         "expect": {"actions": scored, "tolerance": 1e-9}},
        {"name": "a wrong score", "request": request,
         "expect": {"actions": [{"id": scored[0]["id"], "score": 1.0}, scored[1], scored[2]]}},
        {"name": "falls back with its reason", "request": {"customer_id": "thrower"},
         "expect": {"fallback": "trap", "actions": ["generic-welcome"]}},
        {"name": "shown yesterday: the score is damped",
         "request": request, "now_ms": 1_700_000_000_000u64,
         "history": {scored[0]["id"].as_str().unwrap(): {"shown_at_ms": [1_699_913_600_000u64]}},
         "expect": {"actions": scored}}
    ]);
    // More failing calls than would open a server's breaker: each case
    // still runs its policy (and --bench runs each many times).
    let mut cases = cases.as_array().unwrap().clone();
    for i in 0..4 {
        cases.push(
            json!({"name": format!("falls back again, {i}"), "request": {"customer_id": "thrower"},
            "expect": {"fallback": "trap"}}),
        );
    }
    std::fs::write(
        dir.path().join("cases.json"),
        serde_json::to_string(&cases).unwrap(),
    )
    .unwrap();
    let output = moment(
        dir.path(),
        &["policy", "test", "--explain", "--bench"],
        None,
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("ok    scores within a tolerance"), "{text}");
    assert!(text.contains("FAIL  a wrong score"), "{text}");
    assert!(text.contains("scores differ:"), "{text}");
    assert!(text.contains("ok    falls back with its reason"), "{text}");
    assert!(text.contains("FAIL  shown yesterday"), "{text}");
    assert!(text.contains("returned #1"), "{text}");
    assert!(text.contains("ok    falls back again, 3"), "{text}");
    assert!(text.contains("8 cases: 6 passed, 2 failed"), "{text}");
}

#[test]
fn a_new_policy_passes_its_own_tests_in_either_engine() {
    wasm_target();
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["policy", "new", "offers"], None);
    let rhai = json_of(&ok(
        dir.path(),
        &["policy", "test", "offers", "--json"],
        None,
    ));
    ok(
        dir.path(),
        &["policy", "new", "shop", "--engine", "wasm"],
        None,
    );
    let wasm = json_of(&ok(dir.path(), &["policy", "test", "shop", "--json"], None));
    assert_eq!(rhai["engine"], "rhai");
    assert_eq!(wasm["engine"], "wasm");
    for report in [&rhai, &wasm] {
        assert_eq!(report["failed"], 0, "{report}");
        assert_eq!(report["passed"], 4, "{report}");
    }
    // Both engines rank every case alike.
    let outcomes = |report: &Value| -> Vec<Value> {
        let cases = report["cases"].as_array().unwrap();
        cases
            .iter()
            .map(|c| json!([c["name"], c["actions"]]))
            .collect()
    };
    assert_eq!(outcomes(&rhai), outcomes(&wasm));
    // A directory that exists is left alone.
    let again = moment(dir.path(), &["policy", "new", "offers"], None);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("exists already"));
}

#[tokio::test]
async fn push_pull_diff_activate_try_decide_and_results_against_a_real_server() {
    let server = Server::start();
    let keys = server.tenant("authors").await;
    let work = tempfile::tempdir().unwrap();
    let at = work.path();
    let editor = Some((&server, keys.editor.as_str()));
    ok(at, &["policy", "new", "offers"], None);

    // Version 1, not live; version 2 changed and live, with its diff.
    let pushed = json_of(&ok(at, &["policy", "push", "offers", "--json"], editor));
    assert_eq!(
        (pushed["version"].as_u64(), pushed["active"].as_bool()),
        (Some(1), Some(false))
    );
    ok(at, &["policy", "activate", "offers", "1"], editor);
    let script = at.join("offers/policy.rhai");
    let source = std::fs::read_to_string(&script).unwrap();
    std::fs::write(
        &script,
        source.replace("propensity = 0.5;", "propensity = 0.6;"),
    )
    .unwrap();
    let text = ok(at, &["policy", "push", "offers", "--activate"], editor);
    assert!(
        text.contains("pushed offers version 2, now live (was version 1)"),
        "{text}"
    );
    assert!(text.contains("-            propensity = 0.5;"), "{text}");
    assert!(text.contains("+            propensity = 0.6;"), "{text}");

    let listed = ok(at, &["policy", "list"], editor);
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["offers", "2", "2"]),
        "{listed}"
    );
    let diff = json_of(&ok(
        at,
        &["policy", "diff", "offers", "1", "2", "--json"],
        editor,
    ));
    assert!(
        diff["diff"]
            .as_str()
            .unwrap()
            .contains("+            propensity = 0.6;"),
        "{diff}"
    );

    // Decide and try from the terminal.
    let first_visit = ["--customer", "c-1", "--attr", "orders=0"];
    let decide = |version: u64| {
        let mut args = vec!["decide", "offers", "--json", "--explain"];
        args.extend(first_visit);
        let answer = json_of(&ok(at, &args, editor));
        assert_eq!(answer["policy"]["version"], version, "{answer}");
        answer
    };
    let answer = decide(2);
    assert_eq!(answer["actions"][0]["id"], "welcome-discount");
    assert!((answer["actions"][0]["score"].as_f64().unwrap() - 19.2).abs() < 1e-9);
    assert_eq!(answer["explain"]["newsletter"]["status"], "cut_by_limit");
    let mut args = vec!["try", "offers", "--version", "1"];
    args.extend(first_visit);
    let tried = ok(at, &args, editor);
    assert!(tried.contains("by offers version 1"), "{tried}");
    assert!(tried.contains("16.000000"), "{tried}");
    let mut args = vec!["try", "--draft", "offers", "--json"];
    args.extend(first_visit);
    let draft = json_of(&ok(at, &args, editor));
    assert_eq!(draft["policy"]["version"], 0);

    // Roll back, and pull what is live.
    let rolled = ok(at, &["policy", "activate", "offers", "1"], editor);
    assert!(
        rolled.contains("offers version 1 is live (was version 2)"),
        "{rolled}"
    );
    decide(1);
    ok(at, &["policy", "pull", "offers", "--dir", "pulled"], editor);
    let pulled = std::fs::read_to_string(at.join("pulled/policy.rhai")).unwrap();
    assert_eq!(pulled, source);
    assert!(
        std::fs::read_to_string(at.join("pulled/moment.toml"))
            .unwrap()
            .contains("point = \"offers\"")
    );

    // A WASM module goes up as itself and comes back byte for byte.
    let kiosk = at.join("kiosk");
    std::fs::create_dir(&kiosk).unwrap();
    let reference = workspace().join("policies/kiosk-basket");
    std::fs::copy(reference.join("policy.wasm"), kiosk.join("policy.wasm")).unwrap();
    std::fs::copy(reference.join("bundle.json"), kiosk.join("bundle.json")).unwrap();
    std::fs::write(
        kiosk.join("moment.toml"),
        "point = \"kiosk\"\nengine = \"wasm\"\nmodule = \"policy.wasm\"\ncatalog = \"bundle.json\"\n",
    )
    .unwrap();
    ok(at, &["policy", "push", "kiosk", "--activate"], editor);
    ok(
        at,
        &["policy", "pull", "kiosk", "--dir", "kiosk-pulled"],
        editor,
    );
    assert_eq!(
        std::fs::read(at.join("kiosk-pulled/policy.wasm")).unwrap(),
        std::fs::read(reference.join("policy.wasm")).unwrap()
    );

    // An experiment's results as a table.
    let created = server
        .post("/v1/experiments", &keys.editor, &json!({"id": "offers-ab", "point": "offers", "goal": "accept",
            "variants": [{"id": "control", "version": 1, "weight": 0.5}, {"id": "treatment", "version": 2, "weight": 0.5}]}))
        .send()
        .await
        .unwrap();
    expect(created, StatusCode::CREATED).await;
    for i in 0..20 {
        let customer = format!("c-{i}");
        let answer = json_of(&ok(
            at,
            &["decide", "offers", "--customer", &customer, "--json"],
            editor,
        ));
        if i % 2 == 0 {
            let outcome = json!({"decision_id": answer["decision_id"], "action_id": answer["actions"][0]["id"], "type": "accept"});
            expect(
                server
                    .post("/v1/outcomes", &keys.editor, &outcome)
                    .send()
                    .await
                    .unwrap(),
                StatusCode::ACCEPTED,
            )
            .await;
        }
    }
    let table = ok(at, &["experiment", "results", "offers-ab"], editor);
    assert!(
        table.contains("experiment offers-ab on offers (running), goal: accept"),
        "{table}"
    );
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let exposed: u64 = rows
        .iter()
        .filter(|r| {
            r.first()
                .is_some_and(|v| *v == "control" || *v == "treatment")
        })
        .map(|r| r[3].parse::<u64>().unwrap())
        .sum();
    assert_eq!(exposed, 20, "{table}");
    let results = json_of(&ok(
        at,
        &["experiment", "results", "offers-ab", "--json"],
        editor,
    ));
    assert_eq!(results["variants"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn errors_say_what_to_do_and_exit_codes_say_what_kind() {
    let server = Server::start();
    let keys = server.tenant("authors").await;
    let work = tempfile::tempdir().unwrap();
    let at = work.path();
    ok(at, &["policy", "new", "offers"], None);

    // No server named: 2, and how to name one.
    let none = moment(at, &["policy", "list"], None);
    assert_eq!(none.status.code(), Some(2));
    assert!(
        stderr(&none).contains("set MOMENT_URL"),
        "{}",
        stderr(&none)
    );
    // Nothing listening: 3.
    let down = Command::new(env!("CARGO_BIN_EXE_moment"))
        .args([
            "policy",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--key",
            "k",
        ])
        .env("MOMENT_PROFILES", at.join("none.toml"))
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(3));
    assert!(
        stderr(&down).contains("cannot reach http://127.0.0.1:9"),
        "{}",
        stderr(&down)
    );
    // A profile from the profiles file names the server and key.
    std::fs::write(
        at.join("profiles.toml"),
        format!(
            "[staging]\nurl = \"{}\"\nkey = \"{}\"\n",
            server.base, keys.editor
        ),
    )
    .unwrap();
    let listed = ok(
        at,
        &["policy", "list", "--profile", "staging", "--json"],
        None,
    );
    assert_eq!(json_of(&listed), json!([]));
    std::fs::remove_file(at.join("profiles.toml")).unwrap();
    // A key the server does not know: 1, and which key to use.
    let unknown = moment(at, &["policy", "list"], Some((&server, "mk_editor_nope")));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("use an editor key of your tenant"),
        "{}",
        stderr(&unknown)
    );
    // The publishable key may decide but not push.
    let decide_key = moment(
        at,
        &["policy", "push", "offers"],
        Some((&server, &keys.decide)),
    );
    assert_eq!(decide_key.status.code(), Some(1));
    assert!(
        stderr(&decide_key).contains("use an editor or admin key"),
        "{}",
        stderr(&decide_key)
    );

    // A script the server refuses: 1, with the line shown against the file.
    let script = at.join("offers/policy.rhai");
    let source = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, source.replace("let out = [];", "let out = [;")).unwrap();
    let refused = moment(
        at,
        &["policy", "push", "offers"],
        Some((&server, &keys.editor)),
    );
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(message.contains("offers/policy.rhai:"), "{message}");
    assert!(message.contains("let out = [;"), "{message}");
    assert!(message.contains('^'), "{message}");
    // `policy test` refuses it the same way, with no server.
    let local = moment(at, &["policy", "test", "offers"], None);
    assert_eq!(local.status.code(), Some(1));
    assert!(
        stderr(&local).contains("let out = [;"),
        "{}",
        stderr(&local)
    );
    // Nothing was stored.
    let listed = server
        .get("/v1/policies", &keys.editor)
        .send()
        .await
        .unwrap();
    assert_eq!(expect(listed, StatusCode::OK).await, json!([]));

    // A manifest that is not TOML: 2, with the line.
    std::fs::write(
        at.join("offers/moment.toml"),
        "point = \"offers\"\nengine = rhai\n",
    )
    .unwrap();
    let bad = moment(at, &["policy", "test", "offers"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("moment.toml:2:"), "{}", stderr(&bad));
}
