//! Keys (admin): list, issue (the secret shown once), revoke after a
//! confirmation.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::policies::Confirm;
use super::session::SignedIn;
use super::view::{Frame, when};
use super::{CsrfOnly, Failure, check_csrf, render};
use crate::http::AppState;
use moment_core::model::Role;

struct KeyRow {
    id: String,
    role: String,
    when: String,
    revoked: Option<String>,
    yours: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    frame: Option<Frame>,
    csrf: String,
    keys: Vec<KeyRow>,
    /// Id, role and secret of a key just issued.
    issued: Option<(String, String, String)>,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/keys", get(list).post(issue))
        .route(
            "/console/keys/{id}/revoke",
            get(confirm_revoke).post(revoke),
        )
}

fn admin(signed: &SignedIn) -> Result<(), Failure> {
    match signed.is_admin() {
        true => Ok(()),
        false => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "keys are managed with an admin key; sign in with one",
        )),
    }
}

async fn page(
    app: &AppState,
    signed: &SignedIn,
    issued: Option<(String, String, String)>,
) -> Result<Html<String>, Failure> {
    let keys = app
        .store
        .keys(&signed.caller.tenant)
        .await?
        .into_iter()
        .map(|k| KeyRow {
            yours: k.id == signed.caller.key_id,
            id: k.id,
            role: k.role.to_string(),
            when: when(k.created_at_ms),
            revoked: k.revoked_at_ms.map(when),
        })
        .collect();
    render(&KeysPage {
        frame: Frame::new(signed, "keys"),
        csrf: signed.csrf.clone(),
        keys,
        issued,
    })
}

async fn list(State(app): State<AppState>, signed: SignedIn) -> Result<Html<String>, Failure> {
    admin(&signed)?;
    page(&app, &signed, None).await
}

#[derive(Deserialize)]
struct NewKey {
    #[serde(default)]
    csrf: String,
    role: Role,
}

async fn issue(
    State(app): State<AppState>,
    signed: SignedIn,
    Form(form): Form<NewKey>,
) -> Result<Response, Failure> {
    admin(&signed)?;
    check_csrf(&signed, &form.csrf)?;
    let (id, secret) = app
        .service
        .issue_key(&signed.caller.tenant, form.role)
        .await?;
    let html = page(&app, &signed, Some((id, form.role.to_string(), secret))).await?;
    Ok((StatusCode::CREATED, html).into_response())
}

async fn confirm_revoke(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, Failure> {
    admin(&signed)?;
    let active = app
        .store
        .keys(&signed.caller.tenant)
        .await?
        .into_iter()
        .any(|k| k.id == id && k.revoked_at_ms.is_none());
    if !active {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no active key {id:?}"),
        ));
    }
    render(&Confirm {
        frame: Frame::new(&signed, "keys"),
        heading: format!("Revoke key {id}?"),
        what: "Every request made with it is refused from now on, on every server. \
               This cannot be undone: issue a new key instead."
            .to_owned(),
        action: format!("/console/keys/{id}/revoke"),
        csrf: signed.csrf.clone(),
        fields: Vec::new(),
        confirm: "Revoke".to_owned(),
        back: "/console/keys".to_owned(),
    })
}

async fn revoke(
    State(app): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Result<Redirect, Failure> {
    admin(&signed)?;
    check_csrf(&signed, &form.csrf)?;
    if id == signed.caller.key_id {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "this session's own key cannot be revoked from it; sign in with another admin key",
        ));
    }
    app.service.revoke_key(&signed.caller.tenant, &id).await?;
    Ok(Redirect::to("/console/keys"))
}
