//! Scripts assembled from every way Rhai lets data grow, run to their end:
//! each must stop with a typed failure (`memory`, `fuel` or `deadline`)
//! while this process's peak resident memory stays under
//! [`PEAK_RSS_BYTES`]. The deadline is generous on purpose, so that only the
//! memory budget and Rhai's caps stand between a script and the machine.
//!
//! This file is its own test binary: the peak it reads is these scripts'.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Map;

use moment_core::call::{History, Limits, PolicyError, PolicyInput};
use moment_engines::memory::Accounting;
use moment_engines::rhai_engine::RhaiEngine;

#[global_allocator]
static ALLOCATOR: Accounting<std::alloc::System> = Accounting(std::alloc::System);

/// The most this process may hold at its peak, whatever the scripts do:
/// the heap budget (32 MiB), what one operation may add before the next look
/// (at most as much again),
/// Rhai's own copies of both, and the test harness.
const PEAK_RSS_BYTES: u64 = 512 << 20;

/// One statement that grows `s` (string), `a` (array), `m` (map) or `b`
/// (blob), built from Rhai's growing builtins and operators.
const GROWERS: &[&str] = &[
    "s += s;",
    "s = s + s;",
    "s.pad(s.len() * 2 + 1, 'x');",
    "s += a.to_string();",
    "s += m.to_json();",
    "a.push(a);",
    "a += a;",
    "a.append(a);",
    "a = a + a;",
    "a = [a, a];",
    "a.pad(a.len() * 2 + 1, s);",
    "a.pad(a.len() * 2 + 1, m);",
    "a.pad(a.len() * 2 + 1, b);",
    "a.pad(a.len() * 2 + 1, Fn(\"decide\"));",
    "a.insert(0, m);",
    "a = a.split(0) + a;",
    "m[key + m.len()] = s;",
    "m[key + m.len()] = a;",
    "m.set(key + m.len(), m);",
    "m += m;",
    "m = #{ x: m, y: m };",
    "m.mixin(#{ z: a });",
    "b.pad(b.len() * 2 + 1, 7);",
    "b += b;",
    "b.append(b);",
];

fn script(key_len: usize, growers: &[usize]) -> String {
    let body: String = growers.iter().map(|&i| GROWERS[i]).collect();
    format!(
        r#"fn decide(ctx) {{
    let s = "ab"; let a = [1]; let m = #{{ k: 1 }}; let b = blob(4, 1);
    let key = "k";
    while key.len() < {key_len} {{ key += key; }}
    loop {{ {body} }}
}}"#
    )
}

/// The peak resident set of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(3),
        ..Limits::default()
    }
}

fn run(engine: &RhaiEngine, source: &str) -> Result<(), PolicyError> {
    let script = engine.compile(source).unwrap();
    let empty = Map::new();
    let input = PolicyInput {
        customer_id: "c-1",
        stage: None,
        channel: None,
        attributes: &empty,
        context: &empty,
        candidates: vec![],
        history: History::new(None, &[]),
        now_ms: 0,
    };
    engine.run(&script, &input, &limits(), &mut 0).map(drop)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn growing_scripts_stop_typed_within_bounded_memory(
        key_len in prop::sample::select(vec![1usize, 64, 4096]),
        growers in prop::collection::vec(0..GROWERS.len(), 1..4),
    ) {
        let engine = RhaiEngine::new(&limits());
        let source = script(key_len, &growers);
        let outcome = run(&engine, &source);
        prop_assert!(
            matches!(
                outcome,
                Err(PolicyError::Memory | PolicyError::Fuel | PolicyError::Deadline)
            ),
            "{source}\n→ {outcome:?}"
        );
        let peak = peak_rss();
        prop_assert!(peak < PEAK_RSS_BYTES, "{source}\n→ peak RSS {} MiB", peak >> 20);
    }
}

/// Each grower alone, so every one is known to run (and stop) at least once.
#[test]
fn every_grower_alone_stops_typed() {
    let engine = RhaiEngine::new(&limits());
    for i in 0..GROWERS.len() {
        let source = script(4096, &[i]);
        let outcome = run(&engine, &source);
        assert!(
            matches!(
                outcome,
                Err(PolicyError::Memory | PolicyError::Fuel | PolicyError::Deadline)
            ),
            "{source}\n→ {outcome:?}"
        );
    }
    assert!(
        peak_rss() < PEAK_RSS_BYTES,
        "peak RSS {} MiB",
        peak_rss() >> 20
    );
}

/// Many values, each inside Rhai's caps: maps of 8,000 entries with 4 KiB
/// keys (32 MiB each, counted as 8,000 entries), one per call frame, 24
/// frames deep. Only the heap budget sees what they hold.
#[test]
fn frames_of_capped_values_meet_the_heap_budget() {
    let engine = RhaiEngine::new(&limits());
    let source = r#"
fn grow(n, key) {
    let m = #{};
    for i in 0..8000 { m[key + i] = i; }
    if n > 0 { grow(n - 1, key); }
    m.len()
}
fn decide(ctx) {
    let key = "k";
    while key.len() < 2048 { key += key; }
    key += key.sub_string(0, 2000);
    grow(24, key);
    []
}"#;
    assert_eq!(run(&engine, source), Err(PolicyError::Memory));
    assert!(
        peak_rss() < PEAK_RSS_BYTES,
        "peak RSS {} MiB",
        peak_rss() >> 20
    );
}
