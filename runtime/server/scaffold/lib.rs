//! The {name} policy: scores each candidate the customer may be offered.
//!
//! score = margin × propensity, where margin is value − cost and the
//! propensity is 0.1, or 0.5 for "shipping" actions on the checkout page and
//! for "new" actions before a customer's first order.

use moment_sdk::{Context, Ranked, export_policy, priority};

/// Scores every candidate; the host ranks them, highest first.
pub fn decide(ctx: &Context) -> Vec<Ranked> {
    let first_order = ctx.attr_f64("orders").is_none_or(|orders| orders < 1.0);
    let checkout = ctx.context_str("page") == Some("checkout");
    ctx.candidates
        .iter()
        .map(|c| {
            let mut propensity = 0.1;
            if checkout && c.has_tag("shipping") {
                propensity = 0.5;
            }
            if first_order && c.has_tag("new") {
                propensity = 0.5;
            }
            Ranked::new(&c.id, priority(propensity, c.margin(), 1.0))
        })
        .collect()
}

export_policy!(decide);
