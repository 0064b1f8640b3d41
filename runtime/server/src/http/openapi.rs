//! The OpenAPI document, assembled from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Moment's public HTTP contract.
#[derive(OpenApi)]
#[openapi(
    info(title = "Moment", description = "Next-best-action decisions"),
    paths(
        super::tenants::create, super::tenants::update,
        super::keys::list, super::keys::issue, super::keys::revoke,
        super::policies::upload, super::policies::list, super::policies::show, super::policies::activate,
        super::decide::decide, super::outcomes::record,
        super::customers::patch, super::customers::show,
        super::experiments::create, super::experiments::list, super::experiments::show,
        super::experiments::stop, super::experiments::results,
    ),
    modifiers(&BearerAuth),
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
