//! Per-tenant quotas: how much one tenant may store, so that no tenant can
//! fill the server's memory or disk with policies, versions, experiments or
//! keys. Checked under the service's write lock, before anything is stored;
//! a tenant at a quota gets a 422 naming it and the operator's flag.
//!
//! In a cluster two replicas may each admit the last allowed write at once,
//! so a tenant can end one over a quota, never more per replica.

/// The operator's quotas (`moment serve --max-policies` and the rest).
#[derive(Clone, Copy, Debug)]
pub struct Quotas {
    /// Policies (decision points) per tenant.
    pub policies: usize,
    /// Versions per policy.
    pub versions: usize,
    /// Actions in one version's catalog.
    pub catalog_actions: usize,
    /// Experiments per tenant, running or stopped.
    pub experiments: usize,
    /// Active keys per tenant.
    pub keys: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            policies: 200,
            versions: 1_000,
            catalog_actions: 2_000,
            experiments: 500,
            keys: 50,
        }
    }
}

/// Refuses `adding` more when `have` plus it would pass `quota`.
pub fn check(
    what: &str,
    have: usize,
    adding: usize,
    quota: usize,
    flag: &str,
) -> Result<(), String> {
    if have + adding <= quota {
        return Ok(());
    }
    Err(format!(
        "this tenant has {have} {what}; its quota is {quota} (the operator's {flag})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_the_quota_and_the_flag() {
        assert_eq!(check("keys", 49, 1, 50, "--max-keys"), Ok(()));
        assert_eq!(
            check("keys", 48, 3, 50, "--max-keys"),
            Err("this tenant has 48 keys; its quota is 50 (the operator's --max-keys)".to_owned())
        );
    }
}
