//! Decoding what tenants send: decide requests and policy bundles. Any bytes
//! either decode and pass or fail the checks with an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moment_core::model::policy::Bundle;
use moment_core::pipeline::DecideRequest;
use moment_server::service::PolicyUpload;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<DecideRequest>(data) {
        let _ = request.check();
    }
    if let Ok(upload) = serde_json::from_slice::<PolicyUpload>(data) {
        if let Ok(bundle) = Bundle::new(upload.catalog, &upload.fallback) {
            // What is stored reads back as the same bundle.
            let again = Bundle::from_stored(bundle.to_stored()).expect("stored bundle reloads");
            assert_eq!(again.actions().len(), bundle.actions().len());
        }
    }
});
