//! Contact rules: how often, and after what, an action may be shown again.

use serde::{Deserialize, Serialize};

use super::outcome::OutcomeType;
use super::profile::{ContactHistory, MAX_IMPRESSIONS_KEPT};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// A rolling window for impression caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// The last 24 hours.
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl Period {
    /// Length of the window in ms.
    pub fn ms(self) -> u64 {
        match self {
            Period::Day => DAY_MS,
            Period::Week => 7 * DAY_MS,
            Period::Month => 30 * DAY_MS,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// What contact rules do when the customer's contact history cannot be read
/// (the cluster's Redis is down).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum WhenUnavailable {
    /// Hide every action that has a contact rule: no cap can be exceeded.
    #[default]
    Closed,
    /// Treat the history as empty: show actions as if never shown before.
    Open,
}

/// An action's contact rule, enforced across every channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContactRule {
    /// At most this many impressions per `per` window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_impressions: Option<u32>,
    /// The window of `max_impressions` (default `day`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<Period>,
    /// Days the action stays hidden after the customer rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_after_reject: Option<f64>,
    /// Never show the action again once the customer accepted it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppress_after_accept: bool,
}

/// Why a contact rule was refused at upload.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ContactRuleError {
    /// `per` without `max_impressions`.
    #[error("`per` needs `max_impressions`")]
    PeriodWithoutCap,
    /// A cap the kept impression history cannot enforce.
    #[error("`max_impressions` must be between 1 and {MAX_IMPRESSIONS_KEPT}")]
    BadCap,
    /// A negative, zero-length or non-finite cooldown.
    #[error("`cooldown_after_reject` must be a positive number of days")]
    BadCooldown,
}

impl ContactRule {
    /// Checks the rule makes sense.
    pub fn check(&self) -> Result<(), ContactRuleError> {
        if self.per.is_some() && self.max_impressions.is_none() {
            return Err(ContactRuleError::PeriodWithoutCap);
        }
        if self
            .max_impressions
            .is_some_and(|n| n == 0 || n as usize > MAX_IMPRESSIONS_KEPT)
        {
            return Err(ContactRuleError::BadCap);
        }
        if self
            .cooldown_after_reject
            .is_some_and(|d| !d.is_finite() || d <= 0.0)
        {
            return Err(ContactRuleError::BadCooldown);
        }
        Ok(())
    }

    /// The rule that hides the action now, described, or `None` when it may be shown.
    pub fn blocks(&self, history: Option<&ContactHistory>, now_ms: u64) -> Option<String> {
        let empty = ContactHistory::default();
        let h = history.unwrap_or(&empty);
        if self.suppress_after_accept && h.last(OutcomeType::Accept).is_some() {
            return Some("suppress_after_accept: the customer accepted it".to_owned());
        }
        if let (Some(days), Some(rejected)) =
            (self.cooldown_after_reject, h.last(OutcomeType::Reject))
        {
            let until = rejected.saturating_add((days * DAY_MS as f64) as u64);
            if now_ms < until {
                return Some(format!(
                    "cooldown_after_reject: {days} days after a reject, until {until} ms"
                ));
            }
        }
        if let Some(max) = self.max_impressions {
            let per = self.per.unwrap_or(Period::Day);
            let shown = h.impressions_since(now_ms.saturating_sub(per.ms()));
            if shown >= max as usize {
                return Some(format!(
                    "max_impressions: {shown} of {max} per {} shown",
                    per.as_str()
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::profile::Profile;

    #[test]
    fn caps_cooldowns_and_suppression() {
        let mut p = Profile::default();
        let now = 100 * DAY_MS;
        let cap = ContactRule {
            max_impressions: Some(2),
            ..ContactRule::default()
        };
        assert_eq!(cap.blocks(p.history.get("a"), now), None);
        p.record("a", OutcomeType::Impression, now - 2 * DAY_MS);
        p.record("a", OutcomeType::Impression, now - 1000);
        assert_eq!(
            cap.blocks(p.history.get("a"), now),
            None,
            "one of them is older than a day"
        );
        p.record("a", OutcomeType::Impression, now - 500);
        assert!(cap.blocks(p.history.get("a"), now).is_some());
        let weekly = ContactRule {
            max_impressions: Some(3),
            per: Some(Period::Week),
            ..ContactRule::default()
        };
        assert!(weekly.blocks(p.history.get("a"), now).is_some());

        let cooldown = ContactRule {
            cooldown_after_reject: Some(7.0),
            ..ContactRule::default()
        };
        p.record("a", OutcomeType::Reject, now - DAY_MS);
        assert!(cooldown.blocks(p.history.get("a"), now).is_some());
        assert_eq!(cooldown.blocks(p.history.get("a"), now + 7 * DAY_MS), None);

        let suppress = ContactRule {
            suppress_after_accept: true,
            ..ContactRule::default()
        };
        assert_eq!(suppress.blocks(p.history.get("a"), now), None);
        p.record("a", OutcomeType::Accept, now);
        assert!(suppress.blocks(p.history.get("a"), now).is_some());
    }

    #[test]
    fn checks_rules() {
        let per_only = ContactRule {
            per: Some(Period::Week),
            ..ContactRule::default()
        };
        assert_eq!(per_only.check(), Err(ContactRuleError::PeriodWithoutCap));
        let negative = ContactRule {
            cooldown_after_reject: Some(-1.0),
            ..ContactRule::default()
        };
        assert_eq!(negative.check(), Err(ContactRuleError::BadCooldown));
    }
}
