//! The commands that talk to a running server: push, pull, diff, list,
//! activate, decide, try and experiment results.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use moment_core::model::policy::{Action, EngineKind};
use moment_core::pipeline::DecideResponse;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::client::{Client, Refusal};
use super::project::{Build, MANIFEST, Manifest, Project, pointed};
use super::testing::explained;
use super::{Failure, Output, Remote, print_json, read_text, shown, write};
use crate::http::experiments::Results;
use crate::http::policies::{PolicyDetail, PolicyRow, VersionCreated, VersionDetail, WasmModule};

/// `moment policy push [DIR]`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The policy directory (or its moment.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Make the new version live at once.
    #[arg(long)]
    pub activate: bool,
    /// WASM: upload the built `module` rather than building the crate.
    #[arg(long)]
    pub no_build: bool,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// `moment policy pull NAME`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// The policy (decision point).
    pub name: String,
    /// The version to pull (default: the live one).
    #[arg(long)]
    pub version: Option<u32>,
    /// Where to write it (default: ./NAME). It must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
}

/// `moment policy diff NAME A B`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The policy (decision point).
    pub name: String,
    /// The older version.
    pub from: u32,
    /// The newer version.
    pub to: u32,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// `moment policy list [NAME]`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// A policy whose versions to list (default: every policy).
    pub name: Option<String>,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// `moment policy activate NAME VERSION`.
#[derive(Args, Debug)]
pub struct ActivateArgs {
    /// The policy (decision point).
    pub name: String,
    /// The version to make live.
    pub version: u32,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// The customer and moment of a decision, from the command line.
#[derive(Args, Debug)]
pub struct Moment {
    /// The customer (default for `moment try`: none, the attributes alone).
    #[arg(long)]
    pub customer: Option<String>,
    /// Life-cycle stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// Channel asking.
    #[arg(long)]
    pub channel: Option<String>,
    /// An attribute, `key=value` (the value read as JSON when it is JSON,
    /// else as text); repeat for more.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
    /// A context entry, `key=value` like --attr; repeat for more.
    #[arg(long = "context", value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// How many actions to return.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// `moment decide POINT`.
#[derive(Args, Debug)]
pub struct DecideArgs {
    /// The decision point.
    pub point: String,
    /// The customer and the moment.
    #[command(flatten)]
    pub moment: Moment,
    /// Show what happened to every catalog action (needs an editor key).
    #[arg(long)]
    pub explain: bool,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// `moment try [NAME]`.
#[derive(Args, Debug)]
pub struct TryArgs {
    /// The policy (default with --draft: the directory's point).
    pub name: Option<String>,
    /// A stored version (default: the live one).
    #[arg(long, conflicts_with = "draft")]
    pub version: Option<u32>,
    /// A policy directory to try as an unsaved draft.
    #[arg(long)]
    pub draft: Option<PathBuf>,
    /// The customer and the moment.
    #[command(flatten)]
    pub moment: Moment,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// `moment experiment results ID`.
#[derive(Args, Debug)]
pub struct ResultsArgs {
    /// The experiment's id.
    pub id: String,
    /// The server and key.
    #[command(flatten)]
    pub remote: Remote,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// What `push` did, as `--json` prints it.
#[derive(Serialize)]
struct Pushed {
    name: String,
    version: u32,
    active: bool,
    /// The version that was live before, if any.
    previous_live: Option<u32>,
    /// The new version against the previously live one, as a unified diff.
    diff: String,
}

/// Runs `moment policy push`.
pub async fn push(args: PushArgs) -> Result<(), Failure> {
    let project = Project::open(&args.dir)?;
    let client = Client::connect(&args.remote)?;
    let (catalog, fallback) = project.catalog()?;
    let build = match args.no_build {
        true => Build::Module,
        false => Build::Crate,
    };
    let code = project.code(build)?;
    let name = project.point.to_string();
    let live = client
        .find::<PolicyDetail>(&format!("/v1/policies/{name}"))
        .await?
        .and_then(|p| p.live_version);
    let before = match live {
        Some(version) => Some(fetch(&client, &name, version).await?),
        None => None,
    };
    let path = format!("/v1/policies/{name}/versions");
    let created = match project.manifest.engine {
        EngineKind::Rhai => {
            let body = json!({
                "engine": "rhai",
                "source": String::from_utf8_lossy(&code),
                "catalog": catalog,
                "fallback": fallback,
                "activate": args.activate,
            });
            client.post_raw::<VersionCreated>(&path, &body).await?
        }
        EngineKind::Wasm => {
            let bundle =
                json!({"catalog": catalog, "fallback": fallback, "activate": args.activate});
            let module = reqwest::multipart::Part::bytes(code.clone())
                .file_name("policy.wasm")
                .mime_str("application/wasm")
                .map_err(|e| Failure::Setup(e.to_string()))?;
            let form = reqwest::multipart::Form::new()
                .part("module", module)
                .text("bundle", bundle.to_string());
            client.post_form::<VersionCreated>(&path, form).await?
        }
    };
    let created = created.map_err(|refusal| explain_refusal(&client, &project, refusal))?;
    let now = Sides {
        code: code_text(project.manifest.engine, &code),
        catalog: catalog_text(&catalog),
        fallback: fallback.join("\n"),
    };
    let diff = match &before {
        Some(old) => sides(old).diff(&now, &format!("v{}", old.version), "pushed"),
        None => "(no live version to compare with)\n".to_owned(),
    };
    let pushed = Pushed {
        name,
        version: created.version,
        active: created.active,
        previous_live: live,
        diff,
    };
    if args.output.json {
        print_json(&pushed);
        return Ok(());
    }
    println!(
        "pushed {} version {}{}",
        pushed.name,
        pushed.version,
        match (pushed.active, live) {
            (true, Some(old)) => format!(", now live (was version {old})"),
            (true, None) => ", now live".to_owned(),
            (false, _) => format!(
                " (not live: `moment policy activate {} {}` makes it so)",
                pushed.name, pushed.version
            ),
        }
    );
    if let Some(old) = live {
        println!("changes against live version {old}:");
    }
    print!("{}", pushed.diff);
    Ok(())
}

/// A push the server refused, with its line and column shown against the
/// source file when it names them.
fn explain_refusal(client: &Client, project: &Project, refusal: Refusal) -> Failure {
    if refusal.status == 422
        && let Some((line, column)) = line_and_column(&refusal.detail)
        && let Some(path) = project.source_path()
        && let Ok(text) = read_text(&path)
    {
        return Failure::Failed(format!(
            "the server refused the policy: {}",
            pointed(&path, &text, line, column, &refusal.detail)
        ));
    }
    match refusal.status {
        422 => Failure::Failed(format!(
            "the server refused the policy in {}: {}",
            shown(&project.dir).display(),
            refusal.detail
        )),
        _ => client.refused(refusal),
    }
}

/// The `line L, column C` a compile error's detail names.
fn line_and_column(detail: &str) -> Option<(usize, usize)> {
    let number = |text: &str| -> Option<usize> {
        let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let at = detail.find("line ")?;
    let rest = &detail[at + 5..];
    let line = number(rest)?;
    let column = rest.find("column ").and_then(|c| number(&rest[c + 7..]))?;
    Some((line, column))
}

async fn fetch(client: &Client, name: &str, version: u32) -> Result<VersionDetail, Failure> {
    client
        .get(&format!("/v1/policies/{name}/versions/{version}"))
        .await
}

/// What of a version is compared: code, catalog, fallback, as text.
struct Sides {
    code: String,
    catalog: String,
    fallback: String,
}

impl Sides {
    /// A unified diff of each part that differs, or a line saying none does.
    fn diff(&self, other: &Sides, old: &str, new: &str) -> String {
        let mut out = String::new();
        for (part, a, b) in [
            ("code", &self.code, &other.code),
            ("catalog", &self.catalog, &other.catalog),
            ("fallback", &self.fallback, &other.fallback),
        ] {
            if a == b {
                continue;
            }
            let diff = similar::TextDiff::from_lines(a.as_str(), b.as_str());
            out.push_str(
                &diff
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("{old} {part}"), &format!("{new} {part}"))
                    .to_string(),
            );
        }
        if out.is_empty() {
            out.push_str("(no changes)\n");
        }
        out
    }
}

fn sides(version: &VersionDetail) -> Sides {
    let code = match (&version.source, &version.wasm) {
        (Some(source), _) => with_newline(source),
        (None, Some(wasm)) => wasm.summary(),
        (None, None) => String::new(),
    };
    Sides {
        code,
        catalog: catalog_text(&version.catalog),
        fallback: version.fallback.join("\n"),
    }
}

/// Local code as compared: the Rhai source, or the module's size and hash.
fn code_text(engine: EngineKind, code: &[u8]) -> String {
    match engine {
        EngineKind::Rhai => with_newline(&String::from_utf8_lossy(code)),
        EngineKind::Wasm => WasmModule::of(code, false).summary(),
    }
}

/// `text`, ending in a newline (so that a last line diffs like the others).
fn with_newline(text: &str) -> String {
    match text.ends_with('\n') {
        true => text.to_owned(),
        false => format!("{text}\n"),
    }
}

fn catalog_text(catalog: &[Action]) -> String {
    serde_json::to_string_pretty(catalog).unwrap_or_default() + "\n"
}

/// Runs `moment policy pull`.
pub async fn pull(args: PullArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    let version = match args.version {
        Some(version) => version,
        None => {
            let detail: PolicyDetail = client.get(&format!("/v1/policies/{}", args.name)).await?;
            detail.live_version.ok_or_else(|| {
                Failure::Failed(format!(
                    "{} has no live version; name one with --version",
                    args.name
                ))
            })?
        }
    };
    let detail: VersionDetail = client
        .get(&format!(
            "/v1/policies/{}/versions/{version}?include=wasm",
            args.name
        ))
        .await?;
    let mut manifest = Manifest {
        point: detail.name.clone(),
        engine: detail.engine,
        source: None,
        krate: None,
        module: None,
        catalog: "catalog.json".into(),
        fallback: Some(detail.fallback.clone()),
        cases: None,
        stages: None,
        limits: Default::default(),
    };
    // Everything is read and checked before the directory is made.
    let code: (&str, Vec<u8>) = match (&detail.source, &detail.wasm) {
        (Some(source), _) => {
            manifest.source = Some("policy.rhai".into());
            ("policy.rhai", source.clone().into_bytes())
        }
        (None, Some(wasm)) => {
            let bytes = wasm
                .base64
                .as_deref()
                .map(|b| BASE64.decode(b))
                .transpose()
                .map_err(|e| Failure::Server(format!("the module is not valid base64: {e}")))?
                .ok_or_else(|| Failure::Server("the server sent no module".to_owned()))?;
            manifest.module = Some("policy.wasm".into());
            ("policy.wasm", bytes)
        }
        (None, None) => return Err(Failure::Server("the version has no code".to_owned())),
    };
    let toml = toml::to_string(&manifest)
        .map_err(|e| Failure::Setup(format!("moment.toml could not be written: {e}")))?;
    let files = [
        (code.0, code.1),
        ("catalog.json", catalog_text(&detail.catalog).into_bytes()),
        (
            MANIFEST,
            format!(
                "# {} version {version}, pulled from {}.\n# Add test cases (`cases = \"cases.json\"`) before changing it.\n{toml}",
                detail.name,
                client.base()
            )
            .into_bytes(),
        ),
    ];
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        return Err(Failure::Setup(format!(
            "{} exists already; choose another --dir",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Setup(format!("cannot create {}: {e}", dir.display())))?;
    for (name, bytes) in files {
        write(&dir.join(name), bytes)?;
    }
    println!(
        "wrote {} version {version} ({}) to {}",
        detail.name,
        detail.engine.as_str(),
        shown(&dir).display()
    );
    Ok(())
}

/// Runs `moment policy diff`.
pub async fn diff(args: DiffArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    let old = fetch(&client, &args.name, args.from).await?;
    let new = fetch(&client, &args.name, args.to).await?;
    let diff = sides(&old).diff(
        &sides(&new),
        &format!("v{}", args.from),
        &format!("v{}", args.to),
    );
    match args.output.json {
        true => {
            print_json(&json!({"name": args.name, "from": args.from, "to": args.to, "diff": diff}))
        }
        false => print!("{diff}"),
    }
    Ok(())
}

/// Runs `moment policy list`.
pub async fn list(args: ListArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    let Some(name) = args.name else {
        let rows: Vec<PolicyRow> = client.get("/v1/policies").await?;
        if args.output.json {
            print_json(&rows);
            return Ok(());
        }
        let version = |v: Option<u32>| v.map_or("-".to_owned(), |v| v.to_string());
        table(
            &["POLICY", "LIVE", "LATEST"],
            rows.iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        version(r.live_version),
                        r.latest_version.to_string(),
                    ]
                })
                .collect(),
        );
        return Ok(());
    };
    let detail: PolicyDetail = client.get(&format!("/v1/policies/{name}")).await?;
    if args.output.json {
        print_json(&detail);
        return Ok(());
    }
    table(
        &["VERSION", "ENGINE", "UPLOADED", "BY", "LIVE"],
        detail
            .versions
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    v.engine.as_str().to_owned(),
                    crate::console::view::when(v.created_at_ms),
                    v.created_by.clone(),
                    if v.active { "live" } else { "" }.to_owned(),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// Runs `moment policy activate`.
pub async fn activate(args: ActivateArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    let before = client
        .find::<PolicyDetail>(&format!("/v1/policies/{}", args.name))
        .await?
        .and_then(|p| p.live_version);
    let done: VersionCreated = client
        .post(
            &format!("/v1/policies/{}/activate", args.name),
            &json!({"version": args.version}),
        )
        .await?;
    match args.output.json {
        true => print_json(
            &json!({"name": done.name, "version": done.version, "previous_live": before}),
        ),
        false => println!(
            "{} version {} is live{}",
            done.name,
            done.version,
            before.map_or(String::new(), |v| format!(" (was version {v})"))
        ),
    }
    Ok(())
}

/// `key=value` pairs as a JSON object: each value JSON when it parses as
/// JSON, else text.
fn pairs(items: &[String], flag: &str) -> Result<Map<String, Value>, Failure> {
    items
        .iter()
        .map(|item| {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| Failure::Setup(format!("--{flag} {item:?} must be KEY=VALUE")))?;
            let value =
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
            Ok((key.to_owned(), value))
        })
        .collect()
}

impl Moment {
    /// The request fields these flags give.
    fn fields(&self) -> Result<Map<String, Value>, Failure> {
        let mut body = Map::new();
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                body.insert(key.to_owned(), value);
            }
        };
        set("customer_id", self.customer.clone().map(Value::from));
        set("stage", self.stage.clone().map(Value::from));
        set("channel", self.channel.clone().map(Value::from));
        set("limit", self.limit.map(Value::from));
        body.insert(
            "attributes".into(),
            Value::Object(pairs(&self.attributes, "attr")?),
        );
        body.insert(
            "context".into(),
            Value::Object(pairs(&self.context, "context")?),
        );
        Ok(body)
    }
}

/// Runs `moment decide`.
pub async fn decide(args: DecideArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    if args.moment.customer.is_none() {
        return Err(Failure::Setup(
            "moment decide needs --customer, the customer to decide for".to_owned(),
        ));
    }
    let mut body = args.moment.fields()?;
    body.insert("point".into(), Value::String(args.point.clone()));
    body.insert("explain".into(), Value::Bool(args.explain));
    let answer: DecideResponse = client.post("/v1/decide", &body).await?;
    show_answer(&answer, args.output);
    Ok(())
}

/// Runs `moment try`.
pub async fn try_version(args: TryArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    let mut body = args.moment.fields()?;
    let name = match &args.draft {
        Some(dir) => {
            let project = Project::open(dir)?;
            body.insert("draft".into(), draft(&project)?);
            args.name
                .clone()
                .unwrap_or_else(|| project.point.to_string())
        }
        None => args.name.clone().ok_or_else(|| {
            Failure::Setup("name the policy to try, or give --draft DIR".to_owned())
        })?,
    };
    if let Some(version) = args.version {
        body.insert("version".into(), Value::from(version));
    }
    let answer: DecideResponse = client
        .post(&format!("/v1/policies/{name}/try"), &body)
        .await?;
    show_answer(&answer, args.output);
    Ok(())
}

/// A policy directory as a `draft` for the try route.
fn draft(project: &Project) -> Result<Value, Failure> {
    let (catalog, fallback) = project.catalog()?;
    let code = project.code(Build::Crate)?;
    let mut draft =
        json!({"engine": project.manifest.engine, "catalog": catalog, "fallback": fallback});
    match project.manifest.engine {
        EngineKind::Rhai => {
            draft["source"] = Value::String(String::from_utf8_lossy(&code).into_owned())
        }
        EngineKind::Wasm => draft["wasm"] = Value::String(BASE64.encode(&code)),
    }
    Ok(draft)
}

fn show_answer(answer: &DecideResponse, output: Output) {
    if output.json {
        print_json(answer);
        return;
    }
    println!(
        "decision {} by {} version {}{}{}",
        answer.decision_id,
        answer.policy.name,
        answer.policy.version,
        answer
            .experiment
            .as_ref()
            .map_or(String::new(), |e| format!(
                ", experiment {} variant {}",
                e.id, e.variant
            )),
        if answer.fallback {
            " (the policy failed: fallback actions)"
        } else {
            ""
        }
    );
    let score = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.6}"));
    table(
        &["#", "ACTION", "KIND", "SCORE"],
        answer
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| {
                vec![
                    (i + 1).to_string(),
                    a.id.clone(),
                    a.kind.as_str().to_owned(),
                    score(a.score),
                ]
            })
            .collect(),
    );
    if let Some(explain) = &answer.explain {
        println!("explain:");
        table(
            &["ACTION", "WHAT HAPPENED"],
            explain
                .iter()
                .map(|(id, why)| vec![id.clone(), explained(why)])
                .collect(),
        );
    }
}

/// Runs `moment experiment results`.
pub async fn results(args: ResultsArgs) -> Result<(), Failure> {
    let client = Client::connect(&args.remote)?;
    let results: Results = client
        .get(&format!("/v1/experiments/{}/results", args.id))
        .await?;
    if args.output.json {
        print_json(&results);
        return Ok(());
    }
    println!(
        "experiment {} on {} ({}), goal: {}",
        results.id, results.point, results.status, results.goal
    );
    let percent = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{:.2}%", 100.0 * r));
    let interval = |ci: Option<[f64; 2]>| {
        ci.map_or(String::new(), |[lo, hi]| {
            format!(" [{:.2}, {:.2}]", 100.0 * lo, 100.0 * hi)
        })
    };
    let number = |p: Option<f64>| p.map_or("-".to_owned(), |p| format!("{p:.4}"));
    table(
        &[
            "VARIANT",
            "VERSION",
            "WEIGHT",
            "EXPOSED",
            "CONVERTED",
            "RATE [95%]",
            "LIFT [95%]",
            "P",
            "P(BEATS CONTROL)",
            "VALUE",
        ],
        results
            .variants
            .iter()
            .map(|v| {
                vec![
                    v.id.clone(),
                    v.version.to_string(),
                    format!("{}", v.weight),
                    v.exposures.to_string(),
                    v.conversions.to_string(),
                    format!("{}{}", percent(v.rate), interval(v.rate_ci)),
                    match v.lift {
                        Some(_) => format!("{}{}", percent(v.lift), interval(v.lift_ci)),
                        None => "control".to_owned(),
                    },
                    number(v.p_value),
                    percent(v.chance_to_beat_control),
                    format!("{:.2}", v.value),
                ]
            })
            .collect(),
    );
    if results.srm_warning {
        println!(
            "warning: sample ratio mismatch (p = {}): the split is not what was configured; do not trust these results",
            number(results.srm_p_value)
        );
    }
    Ok(())
}

/// Prints rows under headers, in aligned columns.
fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_position_a_compile_error_names() {
        assert_eq!(
            line_and_column("the Rhai source does not compile: line 3, column 14: Expecting ';'"),
            Some((3, 14))
        );
        assert_eq!(line_and_column("catalog[2]: id is empty"), None);
    }

    #[test]
    fn reads_pairs_as_json_or_text() {
        let map = pairs(
            &["n=14".into(), "plan=family".into(), "ok=true".into()],
            "attr",
        )
        .unwrap_or_default();
        assert_eq!(
            Value::Object(map),
            json!({"n": 14, "plan": "family", "ok": true})
        );
        assert!(pairs(&["nothing".into()], "attr").is_err());
    }
}
