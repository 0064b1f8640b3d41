//! Metric names and the helpers that emit them.
//!
//! The library only emits, through the `metrics` facade; the binary installs
//! the Prometheus recorder. Labels have few values (route template, engine,
//! reason), never customer or tenant ids.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use moment_core::model::policy::EngineKind;

/// Decisions answered, by `outcome` (`policy` or `fallback`).
pub const DECISIONS: &str = "moment_decisions_total";
/// Fallbacks served, by `engine` and `reason`.
pub const FALLBACKS: &str = "moment_policy_fallbacks_total";
/// Time spent in policy calls, by `engine`.
pub const POLICY_SECONDS: &str = "moment_policy_call_seconds";
/// Policy breakers opened, by `engine`.
pub const BREAKER_OPENED: &str = "moment_policy_breaker_opened_total";
/// Decision-log records not written, by `cause` (`queue_full`, `store`).
pub const DECISION_LOG_LOST: &str = "moment_decision_log_lost_total";
/// Decision-log records waiting for the writer (a gauge).
pub const DECISION_LOG_QUEUED: &str = "moment_decision_log_queued";
/// Decisions made without the stored profile because its store could not be reached.
pub const PROFILES_UNAVAILABLE: &str = "moment_profiles_unavailable_total";
/// Decisions made again because the profile changed while they were made.
pub const DECIDE_RETRIES: &str = "moment_decide_retries_total";
/// Outcomes received, by `result` (`stored` or `duplicate`).
pub const OUTCOMES: &str = "moment_outcomes_total";
/// Request attributes a publishable key sent but may not set (the tenant's
/// `caller_attributes`), ignored.
pub const CALLER_ATTRIBUTES_IGNORED: &str = "moment_caller_attributes_ignored_total";
/// Decision and outcome log records deleted past retention.
pub const LOG_PRUNED: &str = "moment_log_pruned_total";
/// Tries of a version or draft (`POST /v1/policies/{name}/try`), by
/// outcome and fallback reason; never counted as decisions.
pub const TRIES: &str = "moment_policy_tries_total";
/// HTTP responses, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "moment_http_requests_total";
/// HTTP latency, by `route`.
pub const HTTP_SECONDS: &str = "moment_http_request_seconds";

/// Registers descriptions for every metric; call once after installing a recorder.
pub fn describe() {
    describe_counter!(
        DECISIONS,
        "Decisions answered, by outcome (policy or fallback)"
    );
    describe_counter!(FALLBACKS, "Fallback answers, by engine and failure reason");
    describe_counter!(
        TRIES,
        "Tries of a policy version or draft, by outcome and fallback reason; not decisions"
    );
    describe_counter!(
        BREAKER_OPENED,
        "Policy versions paused after repeated failures, by engine"
    );
    describe_counter!(
        PROFILES_UNAVAILABLE,
        "Decisions made on the request alone because the profile store could not be reached"
    );
    describe_counter!(
        DECIDE_RETRIES,
        "Decisions made again because another write to the profile came first"
    );
    describe_counter!(
        DECISION_LOG_LOST,
        "Decision-log records never written, by cause (queue_full, store)"
    );
    describe_counter!(
        CALLER_ATTRIBUTES_IGNORED,
        "Request attributes from publishable keys ignored: not in the tenant's caller_attributes"
    );
    describe_counter!(
        LOG_PRUNED,
        "Decision and outcome log records deleted past retention"
    );
    describe_gauge!(
        DECISION_LOG_QUEUED,
        "Decision-log records waiting for the writer"
    );
    describe_histogram!(
        POLICY_SECONDS,
        metrics::Unit::Seconds,
        "Policy call duration"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP responses, by route template, method and status"
    );
    describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request duration"
    );
}

/// Counts request attributes a publishable key may not set, dropped.
pub fn caller_attributes_ignored(count: usize) {
    if count > 0 {
        counter!(CALLER_ATTRIBUTES_IGNORED).increment(count as u64);
    }
}

/// Counts log records deleted past retention.
pub fn log_pruned(records: u64) {
    counter!(LOG_PRUNED).increment(records);
}

/// Records one policy call.
pub fn policy_call(engine: EngineKind, took: Duration) {
    histogram!(POLICY_SECONDS, "engine" => engine.as_str()).record(took.as_secs_f64());
}

/// Records one answered decision.
pub fn decision(fallback: bool) {
    let outcome = if fallback { "fallback" } else { "policy" };
    counter!(DECISIONS, "outcome" => outcome).increment(1);
}

/// Records one try of a version or draft: `reason` is the failure's when it
/// fell back.
pub fn tried(reason: Option<&'static str>) {
    let outcome = if reason.is_some() {
        "fallback"
    } else {
        "policy"
    };
    counter!(TRIES, "outcome" => outcome, "reason" => reason.unwrap_or("")).increment(1);
}

/// Records one fallback and why.
pub fn fallback(engine: EngineKind, reason: &'static str) {
    counter!(FALLBACKS, "engine" => engine.as_str(), "reason" => reason).increment(1);
}

/// Counts a policy version's breaker opening.
pub fn breaker_opened(engine: EngineKind) {
    counter!(BREAKER_OPENED, "engine" => engine.as_str()).increment(1);
}

/// Sets how many decision-log records wait for the writer.
pub fn decision_log_queued(records: usize) {
    gauge!(DECISION_LOG_QUEUED).set(records as f64);
}

/// Counts a decision-log record dropped because the queue was full.
pub fn decision_log_dropped() {
    counter!(DECISION_LOG_LOST, "cause" => "queue_full").increment(1);
}

/// Counts decision-log records the store failed to write.
pub fn decision_log_failed(records: usize) {
    counter!(DECISION_LOG_LOST, "cause" => "store").increment(records as u64);
}

/// Counts a decision made without the stored profile.
pub fn profiles_unavailable() {
    counter!(PROFILES_UNAVAILABLE).increment(1);
}

/// Counts a decision made again on a fresher profile.
pub fn decide_retried() {
    counter!(DECIDE_RETRIES).increment(1);
}

/// Counts outcomes stored and duplicates ignored.
pub fn outcomes(stored: usize, duplicates: usize) {
    counter!(OUTCOMES, "result" => "stored").increment(stored as u64);
    counter!(OUTCOMES, "result" => "duplicate").increment(duplicates as u64);
}

/// Records one HTTP response. Methods outside the standard set are counted
/// as `other`, so a client cannot mint label values.
pub fn http(route: String, method: &str, status: u16, took: Duration) {
    let method: &'static str = match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    histogram!(HTTP_SECONDS, "route" => route.clone()).record(took.as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status.to_string())
        .increment(1);
}
