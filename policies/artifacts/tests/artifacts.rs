//! Checks the artifacts themselves: every corpus file parses and has the
//! imports and exports its README promises, the built policies are ABI v1
//! shaped, and the bundles and cases are valid JSON that agree.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use moment_policy_artifacts::{
    CORPUS_DIR, KIOSK_BASKET_BUNDLE, KIOSK_BASKET_CASES, KIOSK_BASKET_WASM, TELCO_RETENTION_BUNDLE,
    TELCO_RETENTION_CASES, TELCO_RETENTION_RHAI, TELCO_RETENTION_WASM,
};
use serde_json::Value;

/// Just enough of the binary format to list a module's imports and exports.
mod module {
    /// The `(module, name)` of every import and the name of every export.
    pub struct Shape {
        pub imports: Vec<(String, String)>,
        pub exports: Vec<String>,
    }

    struct Reader<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl Reader<'_> {
        fn byte(&mut self) -> u8 {
            self.pos += 1;
            self.bytes[self.pos - 1]
        }

        fn u32(&mut self) -> u32 {
            let (mut value, mut shift) = (0u32, 0);
            loop {
                let b = self.byte();
                value |= u32::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return value;
                }
                shift += 7;
            }
        }

        fn name(&mut self) -> String {
            let len = self.u32() as usize;
            self.pos += len;
            String::from_utf8(self.bytes[self.pos - len..self.pos].to_vec()).unwrap()
        }

        /// Skips an import's description: a kind byte and its type.
        fn skip_import_desc(&mut self) {
            match self.byte() {
                0x00 => {
                    self.u32();
                }
                0x04 => {
                    self.byte();
                    self.u32();
                }
                0x01 => {
                    self.byte();
                    self.skip_limits();
                }
                0x02 => self.skip_limits(),
                _ => self.pos += 2,
            }
        }

        fn skip_limits(&mut self) {
            let flags = self.byte();
            self.u32();
            if flags & 1 == 1 {
                self.u32();
            }
        }
    }

    /// Reads the import (2) and export (7) sections of `wasm`.
    pub fn shape(wasm: &[u8]) -> Shape {
        assert_eq!(&wasm[..8], b"\0asm\x01\0\0\0", "not a core wasm module");
        let mut r = Reader {
            bytes: wasm,
            pos: 8,
        };
        let mut shape = Shape {
            imports: Vec::new(),
            exports: Vec::new(),
        };
        while r.pos < wasm.len() {
            let id = r.byte();
            let size = r.u32() as usize;
            let end = r.pos + size;
            if id == 2 || id == 7 {
                for _ in 0..r.u32() {
                    if id == 2 {
                        let entry = (r.name(), r.name());
                        r.skip_import_desc();
                        shape.imports.push(entry);
                    } else {
                        shape.exports.push(r.name());
                        r.byte();
                        r.u32();
                    }
                }
            }
            r.pos = end;
        }
        shape
    }
}

const ABI_EXPORTS: [&str; 3] = ["memory", "moment_alloc", "moment_decide"];

fn has_abi_exports(shape: &module::Shape) -> bool {
    ABI_EXPORTS
        .iter()
        .all(|e| shape.exports.iter().any(|x| x == e))
}

fn corpus(name: &str) -> Vec<u8> {
    wat::parse_file(Path::new(CORPUS_DIR).join(name)).unwrap()
}

#[test]
fn every_corpus_file_parses() {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(CORPUS_DIR).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            names.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        } else if path.extension().is_some_and(|e| e == "wat") {
            let wasm = wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            module::shape(&wasm);
            names.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let readme = std::fs::read_to_string(Path::new(CORPUS_DIR).join("README.md")).unwrap();
    for name in &names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not describe {name}"
        );
    }
    assert_eq!(names.len(), 25, "{names:?}");
}

#[test]
fn corpus_modules_have_the_promised_shape() {
    for name in [
        "well_behaved.wat",
        "loop_forever.wat",
        "trap.wat",
        "grow_memory.wat",
        "recurse.wat",
        "out_of_bounds.wat",
        "huge_output.wat",
        "not_json.wat",
        "unknown_action.wat",
        "not_array.wat",
    ] {
        let shape = module::shape(&corpus(name));
        assert!(
            shape.imports.is_empty(),
            "{name} imports {:?}",
            shape.imports
        );
        assert!(
            has_abi_exports(&shape),
            "{name} exports {:?}",
            shape.exports
        );
    }
    let wasi = module::shape(&corpus("wasi_import.wat"));
    assert_eq!(
        wasi.imports,
        [("wasi_snapshot_preview1".to_string(), "fd_write".to_string())]
    );
    assert!(has_abi_exports(&wasi));
    assert!(module::shape(&corpus("no_exports.wat")).exports.is_empty());
}

#[test]
fn built_policies_are_abi_v1_modules_without_imports() {
    for wasm in [TELCO_RETENTION_WASM, KIOSK_BASKET_WASM] {
        let shape = module::shape(wasm);
        assert!(shape.imports.is_empty(), "imports {:?}", shape.imports);
        assert!(has_abi_exports(&shape), "exports {:?}", shape.exports);
    }
}

#[test]
fn bundles_and_cases_agree() {
    for (bundle, cases) in [
        (TELCO_RETENTION_BUNDLE, TELCO_RETENTION_CASES),
        (KIOSK_BASKET_BUNDLE, KIOSK_BASKET_CASES),
    ] {
        let bundle: Value = serde_json::from_str(bundle).unwrap();
        let keys: Vec<&String> = bundle.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["catalog", "fallback"]);
        let ids: BTreeSet<&str> = bundle["catalog"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        let cases: Vec<Value> = serde_json::from_str(cases).unwrap();
        assert!(cases.len() >= 8);
        for case in &cases {
            assert!(case["request"]["customer_id"].is_string());
            for id in case["expect"].as_array().unwrap() {
                assert!(
                    ids.contains(id.as_str().unwrap()),
                    "{id} not in the catalog"
                );
            }
        }
    }
}

#[test]
fn rhai_twin_defines_decide() {
    assert!(TELCO_RETENTION_RHAI.contains("fn decide(ctx)"));
}
