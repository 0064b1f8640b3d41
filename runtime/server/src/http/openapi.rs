//! The OpenAPI document, assembled from the handlers' annotations.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// Moment's public HTTP contract.
#[derive(OpenApi)]
#[openapi(
    info(title = "Moment", description = "Next-best-action decisions"),
    paths(
        super::tenants::create, super::tenants::update,
        super::keys::list, super::keys::issue, super::keys::revoke,
        super::policies::upload, super::policies::list, super::policies::show, super::policies::version,
        super::policies::activate, super::tries::try_policy,
        super::decide::decide, super::outcomes::record,
        super::customers::patch, super::customers::show,
        super::experiments::create, super::experiments::list, super::experiments::show,
        super::experiments::stop, super::experiments::results,
    ),
    modifiers(&BearerAuth, &Problems),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme("root_token", bearer());
    }
}

/// Documents every error status each route can answer, as
/// `application/problem+json` bodies: the ones a route names in its own
/// annotation, plus those every route of its kind can answer — 401, 500 and
/// 503 on every route; 403 and 429 where a tenant key is checked (role, the
/// page's origin, the tenant's request rate); 400, 413, 415 and 422 where
/// there is a JSON body; 404 where the path names a resource.
struct Problems;

impl Modify for Problems {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for item in api.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                document_problems(operation);
            }
        }
    }
}

fn document_problems(operation: &mut Operation) {
    // A requirement serialises as `{scheme name: [scopes]}`.
    let tenant_key = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|v| v.get("bearer").is_some())
    });
    let has_body = operation.request_body.is_some();
    let names_resource = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut statuses: Vec<u16> = operation
        .responses
        .responses
        .keys()
        .filter_map(|status| status.parse().ok())
        .filter(|&status| status >= 400)
        .collect();
    statuses.extend([401, 500, 503]);
    if tenant_key {
        statuses.extend([403, 429]);
    }
    if has_body {
        statuses.extend([400, 413, 415, 422]);
    }
    if names_resource {
        statuses.push(404);
    }
    for status in statuses {
        operation
            .responses
            .responses
            .insert(status.to_string(), RefOr::T(problem(status)));
    }
}

/// A problem+json response for `status`.
fn problem(status: u16) -> Response {
    let description = match status {
        400 => "The body is not valid JSON.",
        401 => "No key, or an unknown or revoked one.",
        403 => "The key's role may not do this, or the page's origin is not allowed.",
        404 => "No such resource for this tenant.",
        409 => "It exists already.",
        413 => "The body, or the policy code in it, is over its size limit.",
        415 => "The body is not declared as application/json.",
        422 => "The body is well-formed but invalid; the detail says what to fix.",
        429 => {
            "The tenant is over its request rate on this server; retry after Retry-After seconds."
        }
        500 => "The server failed; the error is logged.",
        503 => "A backend cannot be reached now; nothing changed, retry shortly.",
        _ => "The detail says what went wrong.",
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}
