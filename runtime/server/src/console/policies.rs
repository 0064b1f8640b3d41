//! Policies: the list, a policy's versions and history, one version's
//! source and catalog, activation and rollback behind a confirmation, the
//! editor for a new version with a Try panel for the draft, and Try for any
//! stored version.

use std::sync::Arc;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::session::SignedIn;
use super::view::{Frame, when};
use super::{Failure, check_csrf, render};
use crate::http::AppState;
use crate::http::tries::ANONYMOUS;
use crate::registry::LoadedPolicy;
use crate::service::{NewPolicy, ServiceError};
use moment_core::model::Name;
use moment_core::model::policy::{Action, EngineKind, StoredBundle};
use moment_core::pipeline::{DecideRequest, DecideResponse, Explained};

pub(super) fn routes(upload_bytes: usize) -> Router<AppState> {
    let uploads = Router::new()
        .route("/console/policies/{name}/wasm", post(upload_wasm))
        .layer(DefaultBodyLimit::max(upload_bytes));
    Router::new()
        .merge(uploads)
        .route("/console/policies", get(list))
        .route("/console/new", get(start))
        .route("/console/policies/{name}", get(show))
        .route("/console/policies/{name}/versions/{version}", get(version))
        .route(
            "/console/policies/{name}/activate",
            get(confirm_activate).post(activate),
        )
        .route("/console/policies/{name}/try", get(try_page).post(try_run))
        .route("/console/policies/{name}/new", get(editor).post(edit))
        .route("/console/policies/{name}/diff", get(diff))
}

fn point(raw: &str) -> Result<Name, Failure> {
    Name::parse(raw).map_err(|_| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("there is no policy named {raw:?}"),
        )
    })
}

struct PolicyRow {
    name: String,
    live: Option<u32>,
    latest: u32,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct ListPage {
    frame: Option<Frame>,
    policies: Vec<PolicyRow>,
}

async fn list(State(app): State<AppState>, signed: SignedIn) -> Result<Html<String>, Failure> {
    let policies = app
        .store
        .policies(&signed.caller.tenant)
        .await?
        .into_iter()
        .map(|p| PolicyRow {
            name: p.name.to_string(),
            live: p.live,
            latest: p.latest,
        })
        .collect();
    render(&ListPage {
        frame: Frame::new(&signed, "policies"),
        policies,
    })
}

#[derive(Deserialize)]
struct Start {
    name: String,
}

/// The list page's "new policy" form: on to the editor for that name.
async fn start(_signed: SignedIn, Query(start): Query<Start>) -> Result<Redirect, Failure> {
    let name = Name::parse(start.name.trim()).map_err(|e| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{:?} cannot name a decision point: it {e}", start.name),
        )
    })?;
    Ok(Redirect::to(&format!("/console/policies/{name}/new")))
}

struct VersionRow {
    version: u32,
    engine: String,
    when: String,
    by: String,
    live: bool,
    older: bool,
}

struct EventRow {
    event: String,
    version: u32,
    when: String,
    by: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    frame: Option<Frame>,
    name: String,
    live: Option<u32>,
    versions: Vec<VersionRow>,
    events: Vec<EventRow>,
}

async fn show(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> Result<Html<String>, Failure> {
    let point = point(&name)?;
    let history = app
        .store
        .history(&signed.caller.tenant, &point)
        .await?
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no policy named {name:?}")))?;
    let live = history.live;
    let versions = history
        .versions
        .iter()
        .rev()
        .map(|v| VersionRow {
            version: v.version,
            engine: v.engine.as_str().to_owned(),
            when: when(v.created_at_ms),
            by: v.created_by.clone(),
            live: live == Some(v.version),
            older: live.is_some_and(|l| v.version < l),
        })
        .collect();
    let events = history
        .events
        .iter()
        .rev()
        .map(|e| EventRow {
            event: e.event.clone(),
            version: e.version,
            when: when(e.at_ms),
            by: e.by.clone(),
        })
        .collect();
    render(&PolicyPage {
        frame: Frame::new(&signed, "policies"),
        name: point.to_string(),
        live,
        versions,
        events,
    })
}

/// One stored version, read for a page.
struct StoredView {
    version: u32,
    engine: String,
    when: String,
    by: String,
    live: bool,
    source: Option<String>,
    /// Size and SHA-256 of a WASM module.
    wasm: Option<(usize, String)>,
    catalog: Vec<Action>,
    fallback: Vec<String>,
}

async fn stored(
    app: &AppState,
    signed: &SignedIn,
    point: &Name,
    v: u32,
) -> Result<StoredView, Failure> {
    let tenant = &signed.caller.tenant;
    let missing = || {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("policy {:?} has no version {v}", point.as_str()),
        )
    };
    let version = app
        .store
        .version(tenant, point, v)
        .await?
        .ok_or_else(missing)?;
    let history = app
        .store
        .history(tenant, point)
        .await?
        .ok_or_else(missing)?;
    let info = history
        .versions
        .iter()
        .find(|i| i.version == v)
        .ok_or_else(missing)?;
    let bundle: StoredBundle = serde_json::from_str(&version.bundle_json)
        .map_err(crate::http::error::ApiError::internal)?;
    let (source, wasm) = match version.engine {
        EngineKind::Rhai => (
            Some(String::from_utf8_lossy(&version.code).into_owned()),
            None,
        ),
        EngineKind::Wasm => {
            use sha2::Digest as _;
            let hash = hex::encode(sha2::Sha256::digest(&version.code));
            (None, Some((version.code.len(), hash)))
        }
    };
    Ok(StoredView {
        version: v,
        engine: version.engine.as_str().to_owned(),
        when: when(info.created_at_ms),
        by: info.created_by.clone(),
        live: history.live == Some(v),
        source,
        wasm,
        catalog: bundle.catalog,
        fallback: bundle.fallback,
    })
}

#[derive(Template)]
#[template(path = "console/version.html")]
struct VersionPage {
    frame: Option<Frame>,
    name: String,
    version: StoredView,
    source: Option<String>,
    wasm: Option<(usize, String)>,
    catalog: String,
    fallback: String,
}

async fn version(
    State(app): State<AppState>,
    signed: SignedIn,
    Path((name, number)): Path<(String, String)>,
) -> Result<Html<String>, Failure> {
    let point = point(&name)?;
    let number: u32 = number.parse().map_err(|_| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("policy {name:?} has no version {number:?}"),
        )
    })?;
    let mut view = stored(&app, &signed, &point, number).await?;
    render(&VersionPage {
        frame: Frame::new(&signed, "policies"),
        name: point.to_string(),
        source: view.source.take(),
        wasm: view.wasm.take(),
        catalog: serde_json::to_string_pretty(&view.catalog).unwrap_or_default(),
        fallback: view.fallback.join(", "),
        version: view,
    })
}

/// A confirmation page for a change that takes effect at once.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub(super) struct Confirm {
    pub frame: Option<Frame>,
    pub heading: String,
    pub what: String,
    pub action: String,
    pub csrf: String,
    pub fields: Vec<(String, String)>,
    pub confirm: String,
    pub back: String,
}

#[derive(Deserialize)]
struct Which {
    version: u32,
}

async fn confirm_activate(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(which): Query<Which>,
) -> Result<Html<String>, Failure> {
    let point = point(&name)?;
    let target = stored(&app, &signed, &point, which.version).await?;
    let live = app
        .store
        .history(&signed.caller.tenant, &point)
        .await?
        .and_then(|h| h.live);
    let (heading, what) = match live {
        Some(live) if live == which.version => (
            format!("Version {live} is already live"),
            "Nothing would change.".to_owned(),
        ),
        Some(live) => (
            match which.version < live {
                true => format!("Roll {name} back to version {}?", which.version),
                false => format!("Make version {} of {name} live?", which.version),
            },
            format!(
                "Every decision at {name} will run version {} ({}, uploaded {} by {}) \
                 instead of version {live}, on every server, from the next request. \
                 Running experiments keep their variants.",
                which.version, target.engine, target.when, target.by
            ),
        ),
        None => (
            format!("Make version {} of {name} live?", which.version),
            format!(
                "Decisions at {name} start running version {} ({}, uploaded {} by {}).",
                which.version, target.engine, target.when, target.by
            ),
        ),
    };
    render(&Confirm {
        frame: Frame::new(&signed, "policies"),
        heading,
        what,
        action: format!("/console/policies/{name}/activate"),
        csrf: signed.csrf.clone(),
        fields: vec![("version".to_owned(), which.version.to_string())],
        confirm: match live.is_some_and(|l| which.version < l) {
            true => "Roll back".to_owned(),
            false => "Make it live".to_owned(),
        },
        back: format!("/console/policies/{name}"),
    })
}

#[derive(Deserialize)]
struct ActivateForm {
    #[serde(default)]
    csrf: String,
    version: u32,
}

async fn activate(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<ActivateForm>,
) -> Result<Redirect, Failure> {
    check_csrf(&signed, &form.csrf)?;
    let point = point(&name)?;
    app.service
        .activate(
            &signed.caller.tenant,
            &point,
            form.version,
            &signed.caller.key_id,
        )
        .await?;
    Ok(Redirect::to(&format!("/console/policies/{point}")))
}

/// The Try fields as typed, and what was wrong with them.
#[derive(Default, Deserialize)]
struct Ask {
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    attributes: String,
    #[serde(default)]
    context: String,
    #[serde(skip)]
    attributes_error: Option<String>,
    #[serde(skip)]
    context_error: Option<String>,
}

fn object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_str(text).map_err(|e| format!("The {what} must be a JSON object: {e}."))
}

impl Ask {
    /// The decide request these fields ask for, or `None` with the errors
    /// set on the fields.
    fn request(&mut self, point: &Name) -> Option<(DecideRequest, bool)> {
        let attributes = object(&self.attributes, "attributes")
            .map_err(|e| self.attributes_error = Some(e))
            .ok();
        let context = object(&self.context, "context")
            .map_err(|e| self.context_error = Some(e))
            .ok();
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let customer = text(&self.customer_id);
        Some((
            DecideRequest {
                point: point.to_string(),
                customer_id: customer.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
                stage: text(&self.stage),
                channel: text(&self.channel),
                attributes: attributes?,
                context: context?,
                limit: Some(10),
                max_per_kind: Default::default(),
                record_impressions: false,
                explain: true,
            },
            customer.is_none(),
        ))
    }
}

/// A try's answer, as the page shows it.
struct TryView {
    error: Option<String>,
    version: u32,
    fallback: bool,
    actions: Vec<ActionRow>,
    /// Action id and what happened to it.
    explain: Vec<(String, String)>,
}

struct ActionRow {
    id: String,
    kind: String,
    score: String,
    payload: String,
}

fn explained(why: &Explained) -> String {
    match why {
        Explained::Returned { rank, score } => match score {
            Some(score) => format!("returned at rank {rank}, score {score}"),
            None => format!("returned at rank {rank}, as a fallback action"),
        },
        Explained::CutByLimit { score } => format!("scored {score}, below the limit's cut"),
        Explained::CutByKindCap { score } => {
            format!("scored {score}, but its kind had reached its cap")
        }
        Explained::Ineligible { condition } => format!("not eligible: {condition}"),
        Explained::ContactRule { rule } => format!("held back by a contact rule: {rule}"),
        Explained::NotScored => "the policy did not score it".to_owned(),
        Explained::PolicyFailed { reason } => format!("not ranked: the policy failed ({reason})"),
    }
}

impl From<DecideResponse> for TryView {
    fn from(answer: DecideResponse) -> Self {
        Self {
            error: None,
            version: answer.policy.version,
            fallback: answer.fallback,
            actions: answer
                .actions
                .into_iter()
                .map(|a| ActionRow {
                    id: a.id,
                    kind: a.kind.as_str().to_owned(),
                    score: a.score.map_or_else(|| "—".to_owned(), |s| s.to_string()),
                    payload: match a.payload {
                        Value::Null => String::new(),
                        payload => payload.to_string(),
                    },
                })
                .collect(),
            explain: answer
                .explain
                .unwrap_or_default()
                .iter()
                .map(|(id, why)| (id.clone(), explained(why)))
                .collect(),
        }
    }
}

/// Runs a try of `policy` for the fields in `ask`; `None` when the fields
/// are wrong (their errors are set).
async fn run_try(
    app: &AppState,
    signed: &SignedIn,
    point: &Name,
    policy: Arc<LoadedPolicy>,
    ask: &mut Ask,
) -> Option<TryView> {
    let (request, anonymous) = ask.request(point)?;
    let tenant = app.registry.tenant(&signed.caller.tenant);
    let answer = app
        .decide_path()
        .try_policy(
            &signed.caller.tenant,
            &tenant,
            policy,
            Arc::new(request),
            anonymous,
        )
        .await;
    Some(match answer {
        Ok(answer) => answer.into(),
        Err(refused) => TryView {
            error: Some(Failure::from(refused).detail),
            version: 0,
            fallback: false,
            actions: Vec::new(),
            explain: Vec::new(),
        },
    })
}

#[derive(Template)]
#[template(path = "console/try.html")]
struct TryPage {
    frame: Option<Frame>,
    csrf: String,
    name: String,
    version: Option<u32>,
    ask: Ask,
    result: Option<TryView>,
}

#[derive(Deserialize)]
struct MaybeVersion {
    version: Option<u32>,
}

async fn try_page(
    signed: SignedIn,
    Path(name): Path<String>,
    Query(which): Query<MaybeVersion>,
) -> Result<Html<String>, Failure> {
    let point = point(&name)?;
    render(&TryPage {
        frame: Frame::new(&signed, "policies"),
        csrf: signed.csrf.clone(),
        name: point.to_string(),
        version: which.version,
        ask: Ask::default(),
        result: None,
    })
}

#[derive(Deserialize)]
struct TryForm {
    #[serde(default)]
    csrf: String,
    version: Option<u32>,
    #[serde(flatten)]
    ask: Ask,
}

async fn try_run(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<TryForm>,
) -> Result<Response, Failure> {
    check_csrf(&signed, &form.csrf)?;
    let point = point(&name)?;
    let policy = match form.version {
        Some(v) => {
            app.service
                .version(&signed.caller.tenant, &point, v)
                .await?
        }
        None => app
            .registry
            .live(&signed.caller.tenant, &point)
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("{name:?} has no live version; try a stored version instead"),
                )
            })?,
    };
    let mut ask = form.ask;
    let result = run_try(&app, &signed, &point, policy, &mut ask).await;
    let status = match result.is_some() {
        true => StatusCode::OK,
        false => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let html = render(&TryPage {
        frame: Frame::new(&signed, "policies"),
        csrf: signed.csrf.clone(),
        name: point.to_string(),
        version: form.version,
        ask,
        result,
    })?;
    Ok((status, html).into_response())
}

/// A new policy's first draft: a policy that ranks offers by value.
const STARTER_SOURCE: &str = r#"// Rank the eligible candidates: return [#{ id, score }], best first.
fn decide(ctx) {
    let out = [];
    for c in ctx.candidates {
        out.push(#{ id: c.id, score: c.value });
    }
    out
}
"#;
const STARTER_CATALOG: &str = r#"[
  {"id": "welcome", "kind": "message", "value": 1, "payload": {"headline": "Welcome"}}
]"#;

#[derive(Template)]
#[template(path = "console/editor.html")]
struct EditorPage {
    frame: Option<Frame>,
    csrf: String,
    name: String,
    origin: String,
    source: String,
    source_error: Option<String>,
    catalog: String,
    catalog_error: Option<String>,
    fallback: String,
    error: Option<String>,
    ask: Ask,
    result: Option<TryView>,
}

#[derive(Deserialize)]
struct From_ {
    from: Option<u32>,
}

async fn editor(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(from): Query<From_>,
) -> Result<Html<String>, Failure> {
    let point = point(&name)?;
    let live = app
        .store
        .history(&signed.caller.tenant, &point)
        .await?
        .and_then(|h| h.live);
    let base = match from.from.or(live) {
        Some(v) => Some(stored(&app, &signed, &point, v).await?),
        None => None,
    };
    let (origin, source, catalog, fallback) = match base {
        Some(v) => {
            let catalog = serde_json::to_string_pretty(&v.catalog).unwrap_or_default();
            match v.source {
                Some(source) => (
                    format!("Starting from version {}.", v.version),
                    source,
                    catalog,
                    v.fallback.join(", "),
                ),
                None => (
                    format!(
                        "Version {} is WebAssembly; here you write Rhai over its catalog                          (upload a module with the API or the CLI).",
                        v.version
                    ),
                    STARTER_SOURCE.to_owned(),
                    catalog,
                    v.fallback.join(", "),
                ),
            }
        }
        None => (
            "A new decision point: a starter policy and catalog.".to_owned(),
            STARTER_SOURCE.to_owned(),
            STARTER_CATALOG.to_owned(),
            "welcome".to_owned(),
        ),
    };
    render(&EditorPage {
        frame: Frame::new(&signed, "policies"),
        csrf: signed.csrf.clone(),
        name: point.to_string(),
        origin,
        source,
        source_error: None,
        catalog,
        catalog_error: None,
        fallback,
        error: None,
        ask: Ask::default(),
        result: None,
    })
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    intent: String,
    source: String,
    catalog: String,
    #[serde(default)]
    fallback: String,
    #[serde(flatten)]
    ask: Ask,
}

async fn edit(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Form(form): Form<EditForm>,
) -> Result<Response, Failure> {
    check_csrf(&signed, &form.csrf)?;
    let point = new_point(&name)?;
    let mut page = EditorPage {
        frame: Frame::new(&signed, "policies"),
        csrf: signed.csrf.clone(),
        name: point.to_string(),
        origin: "Your draft.".to_owned(),
        source: form.source.clone(),
        source_error: None,
        catalog: form.catalog.clone(),
        catalog_error: None,
        fallback: form.fallback.clone(),
        error: None,
        ask: form.ask,
        result: None,
    };
    let catalog = match serde_json::from_str::<Vec<Action>>(&form.catalog) {
        Ok(catalog) => catalog,
        Err(e) => {
            page.catalog_error = Some(format!("The catalog is not a valid list of actions: {e}."));
            return unprocessable(&page);
        }
    };
    let draft = NewPolicy {
        engine: EngineKind::Rhai,
        code: form.source.into_bytes(),
        catalog,
        fallback: fallback_ids(&form.fallback),
        activate: form.intent == "save_live",
    };
    let refused = |page: &mut EditorPage, err: ServiceError| {
        let detail = Failure::from(err).detail;
        match detail.starts_with("the Rhai source") {
            true => page.source_error = Some(detail),
            false => page.error = Some(detail),
        }
    };
    match form.intent.as_str() {
        "try" => match app.service.draft(&point, draft).await {
            Ok(policy) => {
                page.result = run_try(&app, &signed, &point, Arc::new(policy), &mut page.ask).await;
                if page.result.is_none() {
                    return unprocessable(&page);
                }
                Ok(render(&page)?.into_response())
            }
            Err(err) => {
                refused(&mut page, err);
                unprocessable(&page)
            }
        },
        "save" | "save_live" => {
            match app
                .service
                .create_version(&signed.caller.tenant, &point, draft, &signed.caller.key_id)
                .await
            {
                Ok(_) => Ok(Redirect::to(&format!("/console/policies/{point}")).into_response()),
                Err(err) => {
                    refused(&mut page, err);
                    unprocessable(&page)
                }
            }
        }
        other => Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("unknown action {other:?}: use the page's buttons"),
        )),
    }
}

fn unprocessable(page: &EditorPage) -> Result<Response, Failure> {
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)?).into_response())
}

/// One part of a version compared with another, line by line.
struct DiffSection {
    title: &'static str,
    same: bool,
    /// CSS class (`eq`, `ins`, `del`) and the line.
    lines: Vec<(&'static str, String)>,
}

fn diff_section(title: &'static str, old: &str, new: &str) -> DiffSection {
    let diff = similar::TextDiff::from_lines(old, new);
    let lines = diff
        .iter_all_changes()
        .map(|change| {
            let class = match change.tag() {
                similar::ChangeTag::Equal => "eq",
                similar::ChangeTag::Insert => "ins",
                similar::ChangeTag::Delete => "del",
            };
            (class, change.value().trim_end_matches('\n').to_owned())
        })
        .collect();
    DiffSection {
        title,
        same: old == new,
        lines,
    }
}

#[derive(Template)]
#[template(path = "console/diff.html")]
struct DiffPage {
    frame: Option<Frame>,
    name: String,
    from: u32,
    to: u32,
    versions: Vec<u32>,
    sections: Vec<DiffSection>,
}

#[derive(Deserialize)]
struct Pair {
    from: u32,
    to: u32,
}

/// Two versions side by side: the source (or the modules' hashes), the
/// catalog and the fallback, each as a line diff.
async fn diff(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(pair): Query<Pair>,
) -> Result<Html<String>, Failure> {
    let point = point(&name)?;
    let (old, new) = (
        stored(&app, &signed, &point, pair.from).await?,
        stored(&app, &signed, &point, pair.to).await?,
    );
    let code = |v: &StoredView| match (&v.source, &v.wasm) {
        (Some(source), _) => source.clone(),
        (None, Some((size, hash))) => crate::http::policies::module_line(*size, hash),
        (None, None) => String::new(),
    };
    let catalog =
        |v: &StoredView| serde_json::to_string_pretty(&v.catalog).unwrap_or_default() + "\n";
    let fallback = |v: &StoredView| v.fallback.join("\n") + "\n";
    let versions = app
        .store
        .history(&signed.caller.tenant, &point)
        .await?
        .map(|h| h.versions.iter().map(|v| v.version).collect())
        .unwrap_or_default();
    render(&DiffPage {
        frame: Frame::new(&signed, "policies"),
        name: point.to_string(),
        from: pair.from,
        to: pair.to,
        versions,
        sections: vec![
            diff_section("Code", &code(&old), &code(&new)),
            diff_section("Catalog", &catalog(&old), &catalog(&new)),
            diff_section("Fallback", &fallback(&old), &fallback(&new)),
        ],
    })
}

/// The fields of the WASM upload form.
#[derive(Default)]
struct WasmUpload {
    csrf: String,
    module: Vec<u8>,
    catalog: String,
    fallback: String,
    live: bool,
}

impl WasmUpload {
    async fn read(mut form: Multipart) -> Result<Self, Failure> {
        let bad = |e: axum::extract::multipart::MultipartError| {
            Failure::new(
                e.status(),
                format!("the upload could not be read: {}", e.body_text()),
            )
        };
        let mut upload = Self::default();
        while let Some(field) = form.next_field().await.map_err(bad)? {
            match field.name().unwrap_or_default() {
                "module" => upload.module = field.bytes().await.map_err(bad)?.to_vec(),
                "csrf" => upload.csrf = field.text().await.map_err(bad)?,
                "catalog" => upload.catalog = field.text().await.map_err(bad)?,
                "fallback" => upload.fallback = field.text().await.map_err(bad)?,
                "live" => upload.live = true,
                _ => {}
            }
        }
        Ok(upload)
    }
}

/// The point a new version is written for: a name a new policy may take.
fn new_point(name: &str) -> Result<Name, Failure> {
    Name::parse(name).map_err(|e| {
        Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name:?} cannot name a decision point: it {e}"),
        )
    })
}

fn fallback_ids(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Uploads a `.wasm` module with the editor's catalog and fallback.
async fn upload_wasm(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(name): Path<String>,
    form: Multipart,
) -> Result<Response, Failure> {
    let upload = WasmUpload::read(form).await?;
    check_csrf(&signed, &upload.csrf)?;
    let point = new_point(&name)?;
    let mut page = EditorPage {
        frame: Frame::new(&signed, "policies"),
        csrf: signed.csrf.clone(),
        name: point.to_string(),
        origin: "Your upload.".to_owned(),
        source: STARTER_SOURCE.to_owned(),
        source_error: None,
        catalog: upload.catalog.clone(),
        catalog_error: None,
        fallback: upload.fallback.clone(),
        error: None,
        ask: Ask::default(),
        result: None,
    };
    if upload.module.is_empty() {
        page.error = Some("Choose a .wasm file to upload.".to_owned());
        return unprocessable(&page);
    }
    let catalog = match serde_json::from_str::<Vec<Action>>(&upload.catalog) {
        Ok(catalog) => catalog,
        Err(e) => {
            page.catalog_error = Some(format!("The catalog is not a valid list of actions: {e}."));
            return unprocessable(&page);
        }
    };
    let new = NewPolicy {
        engine: EngineKind::Wasm,
        code: upload.module,
        catalog,
        fallback: fallback_ids(&upload.fallback),
        activate: upload.live,
    };
    match app
        .service
        .create_version(&signed.caller.tenant, &point, new, &signed.caller.key_id)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/console/policies/{point}")).into_response()),
        Err(err) => {
            page.error = Some(Failure::from(err).detail);
            unprocessable(&page)
        }
    }
}
