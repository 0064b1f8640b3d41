//! What a WASM policy returns: any bytes decode to a ranking or to a typed
//! error, and ranking against a catalog never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moment_engines::wasm_engine::decode_output;
use moment_core::model::policy::{Action, Bundle};
use moment_core::pipeline::rank;

fuzz_target!(|data: &[u8]| {
    let Ok(scored) = decode_output(data) else {
        return;
    };
    let catalog: Vec<Action> = serde_json::from_str(
        r#"[{"id": "a", "kind": "offer"}, {"id": "b", "kind": "offer"}, {"id": "c", "kind": "message"}]"#,
    )
    .expect("catalog");
    let bundle = Bundle::new(catalog, &["c".to_owned()]).expect("bundle");
    if let Ok(ranked) = rank(&bundle, &[true, false, true], scored) {
        assert!(ranked.windows(2).all(|w| w[0].1 >= w[1].1), "sorted by score");
        assert!(ranked.iter().all(|&(i, s)| i != 1 && s.is_finite()));
    }
});
