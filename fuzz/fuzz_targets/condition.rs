//! The condition evaluator: any condition, any attributes, never a panic.
//! Input: a condition JSON document, a NUL byte, an attributes document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moment_targeting::{Condition, SavedGroups};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |&b| b == 0);
    let (Some(condition), Some(attributes)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(condition), Ok(attributes)) = (
        serde_json::from_slice::<Value>(condition),
        serde_json::from_slice::<Value>(attributes),
    ) else {
        return;
    };
    let members = [Value::from("a"), Value::from(1)];
    let mut groups = SavedGroups::new();
    groups.insert("vip", &members);
    for parsed in [Condition::parse(&condition), Condition::parse_lenient(&condition)] {
        if let Ok(parsed) = parsed {
            let passed = parsed.eval(&attributes, &groups);
            // The explanation agrees with the verdict.
            assert_eq!(passed, parsed.first_failure(&attributes, &groups).is_none());
        }
    }
});
