//! Telco churn retention at the call center: what to offer a customer who
//! calls in at the moment of defection.
//!
//! Every candidate is scored `priority(propensity, margin, weight)` and then
//! damped by how often it was already shown:
//!
//! - **margin** is the action's value minus its cost to serve; an action that
//!   loses money is never offered.
//! - **propensity** starts at 0.1; +0.5 when the action's tags name the
//!   caller's stated reason (`context.reason`: `price`, `service`, `moving`,
//!   `billing`, `device`); +0.3 for `service` actions when the customer
//!   complained twice or more (`attributes.complaints_90d`); +0.3 for
//!   `device` actions when the handset is 24 months old or more
//!   (`attributes.device_age_months`); + tenure/100 (tenure capped at 48
//!   months) for `loyalty` actions; capped at 0.95.
//! - **weight** is 1, times the defection risk for `discount` actions
//!   (0.6 at-risk, 0.2 otherwise, +0.1 per complaint up to 3), times 0.3 for
//!   `agent` actions when the call is not on the `call-center` channel.
//! - **gates**: `discount` actions only for the `at-risk` stage;
//!   `long-tenure` actions only from 24 months of tenure
//!   (`attributes.tenure_months`); `on-request` actions only when the reason
//!   fits.
//! - **fatigue**: the score is divided by 1 + past impressions.
//!
//! Numeric attributes may be JSON integers or floats; anything else counts
//! as absent (0). `policy.rhai` beside this crate is the same policy in
//! Rhai and must rank identically.

use moment_sdk::{Candidate, Context, Ranked, export_policy, priority};

/// Everyone starts here: a small chance to accept anything.
const BASE_PROPENSITY: f64 = 0.1;
/// Added when the action answers the caller's stated reason.
const REASON_FIT: f64 = 0.5;
/// Added to `service` actions for repeat complainers, and to `device`
/// actions for old handsets.
const NEED_BOOST: f64 = 0.3;
/// No one accepts anything for sure.
const MAX_PROPENSITY: f64 = 0.95;
/// Complaints at which a specialist becomes the obvious answer.
const COMPLAINTS_FOR_SPECIALIST: f64 = 2.0;
/// Handset age, in months, at which an upgrade becomes attractive.
const OLD_DEVICE_MONTHS: f64 = 24.0;
/// Tenure, in months, that unlocks `long-tenure` actions.
const LONG_TENURE_MONTHS: f64 = 24.0;
/// Tenure credited to `loyalty` actions is capped here.
const MAX_TENURE_CREDIT_MONTHS: f64 = 48.0;
/// Weight of actions that need a live agent, off the call-center channel.
const NO_AGENT_WEIGHT: f64 = 0.3;

/// Scores every candidate the customer may be offered.
pub fn decide(ctx: &Context) -> Vec<Ranked> {
    let signals = Signals::read(ctx);
    ctx.candidates
        .iter()
        .filter_map(|c| {
            let score = score(&signals, c)? / (1.0 + f64::from(ctx.impressions(&c.id)));
            Some(Ranked::new(&c.id, score))
        })
        .collect()
}

export_policy!(decide);

/// What the policy reads from the context, once per decision.
struct Signals<'a> {
    at_risk: bool,
    call_center: bool,
    reason: &'a str,
    tenure: f64,
    complaints: f64,
    device_age: f64,
    risk: f64,
}

impl<'a> Signals<'a> {
    fn read(ctx: &'a Context) -> Self {
        let at_risk = ctx.in_stage("at-risk");
        let complaints = ctx.attr_f64("complaints_90d").unwrap_or(0.0);
        Self {
            at_risk,
            call_center: ctx.on_channel("call-center"),
            reason: ctx.context_str("reason").unwrap_or(""),
            tenure: ctx.attr_f64("tenure_months").unwrap_or(0.0),
            complaints,
            device_age: ctx.attr_f64("device_age_months").unwrap_or(0.0),
            risk: defection_risk(at_risk, complaints),
        }
    }
}

/// The chance the customer leaves: 0.6 at-risk, 0.2 otherwise, +0.1 per
/// complaint up to 3.
fn defection_risk(at_risk: bool, complaints: f64) -> f64 {
    let base = if at_risk { 0.6 } else { 0.2 };
    base + 0.1 * bounded(complaints, 0.0, 3.0)
}

/// The undamped score of one candidate, or `None` when it must not be shown.
fn score(s: &Signals<'_>, c: &Candidate) -> Option<f64> {
    let margin = c.margin();
    let fits = !s.reason.is_empty() && c.has_tag(s.reason);
    let gated = margin <= 0.0
        || (c.has_tag("discount") && !s.at_risk)
        || (c.has_tag("long-tenure") && s.tenure < LONG_TENURE_MONTHS)
        || (c.has_tag("on-request") && !fits);
    if gated {
        return None;
    }
    Some(priority(propensity(s, c, fits), margin, weight(s, c)))
}

/// How likely the customer is to accept `c`.
fn propensity(s: &Signals<'_>, c: &Candidate, fits: bool) -> f64 {
    let mut p = BASE_PROPENSITY;
    if fits {
        p += REASON_FIT;
    }
    if c.has_tag("service") && s.complaints >= COMPLAINTS_FOR_SPECIALIST {
        p += NEED_BOOST;
    }
    if c.has_tag("device") && s.device_age >= OLD_DEVICE_MONTHS {
        p += NEED_BOOST;
    }
    if c.has_tag("loyalty") {
        p += bounded(s.tenure, 0.0, MAX_TENURE_CREDIT_MONTHS) / 100.0;
    }
    if p > MAX_PROPENSITY {
        MAX_PROPENSITY
    } else {
        p
    }
}

/// How much the business wants `c` shown right now.
fn weight(s: &Signals<'_>, c: &Candidate) -> f64 {
    let mut w = 1.0;
    if c.has_tag("discount") {
        w *= s.risk;
    }
    if c.has_tag("agent") && !s.call_center {
        w *= NO_AGENT_WEIGHT;
    }
    w
}

/// `x` limited to `lo..=hi`, written out so the Rhai twin does the same.
fn bounded(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{decide, defection_risk};
    use moment_sdk::Context;
    use serde_json::json;

    fn ctx(extra: serde_json::Value) -> Context {
        let mut doc = json!({"customer_id": "c", "stage": "at-risk", "channel": "call-center",
            "context": {"reason": "price"},
            "candidates": [
                {"id": "d", "kind": "offer", "value": 45.0, "cost": 20.0, "tags": ["discount", "price"]},
                {"id": "loss", "kind": "offer", "value": 5.0, "cost": 9.0, "tags": ["price"]},
                {"id": "w", "kind": "message", "value": 1.0, "tags": []}]});
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    fn score(ctx: &Context, id: &str) -> Option<f64> {
        decide(ctx)
            .into_iter()
            .find(|r| r.id == id)
            .map(|r| r.score)
    }

    #[test]
    fn risk_grows_with_complaints_up_to_three() {
        assert_eq!(defection_risk(true, 0.0), 0.6);
        assert_eq!(defection_risk(false, 0.0), 0.2);
        assert_eq!(defection_risk(true, 9.0), defection_risk(true, 3.0));
        assert_eq!(defection_risk(true, -4.0), 0.6);
    }

    #[test]
    fn money_losing_actions_are_never_offered() {
        assert_eq!(score(&ctx(json!({})), "loss"), None);
    }

    #[test]
    fn discounts_need_the_at_risk_stage() {
        assert!(score(&ctx(json!({})), "d").is_some());
        assert_eq!(score(&ctx(json!({"stage": "post-purchase"})), "d"), None);
        assert_eq!(score(&ctx(json!({"stage": null})), "d"), None);
    }

    #[test]
    fn past_impressions_damp_the_score() {
        let fresh = score(&ctx(json!({})), "d").unwrap();
        let seen = ctx(json!({"history": {"d": {"impressions": 2, "last_shown_ms": 1}}}));
        assert_eq!(score(&seen, "d").unwrap(), fresh / 3.0);
    }
}
