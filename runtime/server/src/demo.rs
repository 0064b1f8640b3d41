//! `moment serve --demo`: a `demo` tenant with the reference policies.
//!
//! On first start the tenant is created; on later starts it gets a fresh set
//! of keys (the old ones keep working), since keys are stored only as hashes.
//! Reference policies are uploaded and activated unless already live.

use crate::registry::{Registry, TenantSettings};
use moment_core::model::Name;
use moment_core::model::policy::{EngineKind, StoredBundle};
use moment_policy_artifacts as artifacts;

use crate::service::{NewPolicy, Service, ServiceError, TenantKeys};

/// The demo tenant's id.
pub const TENANT: &str = "demo";

/// The demo tenant's keys, for printing.
pub type DemoKeys = TenantKeys;

/// A reference policy the demo installs: decision point, engine, code, bundle JSON.
struct Reference {
    point: &'static str,
    engine: EngineKind,
    code: &'static [u8],
    bundle: &'static str,
}

/// Call-center retention in Rhai (readable by marketers), the same policy
/// compiled to WASM, the kiosk basket policy in WASM and the website's hero
/// banner in Rhai.
const REFERENCES: &[Reference] = &[
    Reference {
        point: "web-hero",
        engine: EngineKind::Rhai,
        code: artifacts::WEB_HERO_RHAI.as_bytes(),
        bundle: artifacts::WEB_HERO_BUNDLE,
    },
    Reference {
        point: "retention-call",
        engine: EngineKind::Rhai,
        code: artifacts::TELCO_RETENTION_RHAI.as_bytes(),
        bundle: artifacts::TELCO_RETENTION_BUNDLE,
    },
    Reference {
        point: "retention-call-wasm",
        engine: EngineKind::Wasm,
        code: artifacts::TELCO_RETENTION_WASM,
        bundle: artifacts::TELCO_RETENTION_BUNDLE,
    },
    Reference {
        point: "kiosk-checkout",
        engine: EngineKind::Wasm,
        code: artifacts::KIOSK_BASKET_WASM,
        bundle: artifacts::KIOSK_BASKET_BUNDLE,
    },
];

/// Creates or re-keys the demo tenant and installs the reference policies.
pub async fn seed(service: &Service, registry: &Registry) -> Result<DemoKeys, ServiceError> {
    let tenant = Name::parse(TENANT).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let keys = if registry.has_tenant(&tenant) {
        service.issue_keys(&tenant).await?
    } else {
        service
            .create_tenant(&tenant, TenantSettings::default())
            .await?
    };
    for reference in REFERENCES {
        let point =
            Name::parse(reference.point).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if registry.live(&tenant, &point).is_some() {
            continue;
        }
        let bundle: StoredBundle = serde_json::from_str(reference.bundle).map_err(|e| {
            ServiceError::Invalid(format!("reference bundle {}: {e}", reference.point))
        })?;
        let version = NewPolicy {
            engine: reference.engine,
            code: reference.code.to_vec(),
            catalog: bundle.catalog,
            fallback: bundle.fallback,
            activate: true,
        };
        service
            .create_version(&tenant, &point, version, "demo")
            .await?;
    }
    Ok(keys)
}
