//! Retail kiosk basket recommendations: what to suggest next to a shopper,
//! given what is already in the basket.
//!
//! The basket arrives as `context.basket`, a list of
//! `{"sku","category","price"}` lines. Candidates are products (id = SKU,
//! value = price, cost = unit cost) tagged with the basket categories they
//! complement. Each product is scored `priority(propensity, margin, weight)`:
//!
//! - **never** a product already in the basket (its SKU is a line's `sku`);
//! - **margin** is price minus unit cost; a product that would earn less
//!   than 1.00 is dropped;
//! - **propensity** is 0.02 (an impulse buy) + 0.3 per tag that names a
//!   basket category, capped at 0.95; halved when the product costs more
//!   than half the basket's total (an add-on should feel small);
//! - **weight** is 0.5 when the margin is under 30% of the price (thin-margin
//!   products sink), 1 otherwise;
//! - `message` actions (the welcome screen) carry no margin: they get a token
//!   score of 0.01, so they always rank last.
//!
//! A missing or malformed basket counts as empty.

use moment_sdk::{Candidate, Context, Ranked, export_policy, priority};
use serde::Deserialize;

/// A product earning less than this is never suggested.
const MIN_MARGIN: f64 = 1.0;
/// Margin, as a share of price, below which a product is down-ranked.
const THIN_MARGIN_RATE: f64 = 0.3;
/// Weight of thin-margin products.
const THIN_MARGIN_WEIGHT: f64 = 0.5;
/// Chance of an impulse buy with no link to the basket.
const IMPULSE_PROPENSITY: f64 = 0.02;
/// Added per basket category the product complements.
const CATEGORY_FIT: f64 = 0.3;
/// No one buys anything for sure.
const MAX_PROPENSITY: f64 = 0.95;
/// Add-ons dearer than this share of the basket total lose appeal…
const PRICE_FIT_SHARE: f64 = 0.5;
/// …by this factor.
const PRICE_MISFIT_FACTOR: f64 = 0.5;
/// Score of `message` actions: present, but always below any product.
const MESSAGE_SCORE: f64 = 0.01;

/// Scores every product worth suggesting for this basket.
pub fn decide(ctx: &Context) -> Vec<Ranked> {
    let basket = Basket::read(ctx);
    ctx.candidates
        .iter()
        .filter(|c| !basket.holds(&c.id))
        .filter_map(|c| Some(Ranked::new(&c.id, score(&basket, c)?)))
        .collect()
}

export_policy!(decide);

/// One line of `context.basket`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Line {
    sku: String,
    category: String,
    price: f64,
}

/// The shopper's basket.
struct Basket {
    lines: Vec<Line>,
    total: f64,
}

impl Basket {
    fn read(ctx: &Context) -> Self {
        let lines: Vec<Line> = ctx.context_as("basket").unwrap_or_default();
        let total = lines.iter().map(|l| l.price).sum();
        Self { lines, total }
    }

    /// Whether a line of the basket is product `sku`.
    fn holds(&self, sku: &str) -> bool {
        self.lines.iter().any(|l| l.sku == sku)
    }

    /// Whether any line of the basket is in `category`.
    fn has_category(&self, category: &str) -> bool {
        self.lines.iter().any(|l| l.category == category)
    }
}

/// The score of one candidate, or `None` when it must not be suggested.
fn score(basket: &Basket, c: &Candidate) -> Option<f64> {
    if c.kind == "message" {
        return Some(MESSAGE_SCORE);
    }
    let margin = c.margin();
    if margin < MIN_MARGIN {
        return None;
    }
    let weight = if margin < THIN_MARGIN_RATE * c.value {
        THIN_MARGIN_WEIGHT
    } else {
        1.0
    };
    Some(priority(propensity(basket, c), margin, weight))
}

/// How likely the shopper is to add `c` to this basket.
fn propensity(basket: &Basket, c: &Candidate) -> f64 {
    let fits = c.tags.iter().filter(|t| basket.has_category(t)).count();
    let mut p = IMPULSE_PROPENSITY + CATEGORY_FIT * fits as f64;
    if p > MAX_PROPENSITY {
        p = MAX_PROPENSITY;
    }
    if !basket.lines.is_empty() && c.value > PRICE_FIT_SHARE * basket.total {
        p *= PRICE_MISFIT_FACTOR;
    }
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::decide;
    use moment_sdk::Context;
    use serde_json::{Value, json};

    fn ctx(basket: Value) -> Context {
        serde_json::from_value(json!({"customer_id": "k", "context": {"basket": basket},
            "candidates": [
                {"id": "case", "kind": "offer", "value": 20.0, "cost": 6.0, "tags": ["phones"]},
                {"id": "wrap", "kind": "offer", "value": 4.0, "cost": 3.5, "tags": ["toys"]},
                {"id": "welcome", "kind": "message", "value": 0.0, "tags": []}]}))
        .unwrap()
    }

    fn ranked_ids(ctx: &Context) -> Vec<String> {
        decide(ctx).into_iter().map(|r| r.id).collect()
    }

    #[test]
    fn basket_items_are_never_suggested() {
        let basket = json!([{"sku": "case", "category": "phones", "price": 20}]);
        assert_eq!(ranked_ids(&ctx(basket)), ["welcome"]);
    }

    #[test]
    fn low_margin_products_are_dropped() {
        let basket = json!([{"sku": "robot", "category": "toys", "price": 35}]);
        assert!(!ranked_ids(&ctx(basket)).contains(&"wrap".to_string()));
    }

    #[test]
    fn a_malformed_basket_counts_as_empty() {
        let empty = decide(&ctx(json!([])));
        assert_eq!(decide(&ctx(json!("not a basket"))), empty);
        assert_eq!(decide(&ctx(json!([{"sku": 1}]))), empty);
        assert_eq!(decide(&ctx(Value::Null)), empty);
    }

    #[test]
    fn category_fit_raises_the_score() {
        let score = |basket| decide(&ctx(basket))[0].score;
        let fit = score(json!([{"sku": "p", "category": "phones", "price": 400}]));
        let no_fit = score(json!([{"sku": "b", "category": "books", "price": 400}]));
        assert!(fit > no_fit);
    }
}
