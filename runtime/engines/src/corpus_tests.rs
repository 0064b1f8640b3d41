//! Every module of the hostile corpus (`tests/corpus`) against the WASM
//! engine, matching the typed failure each must produce.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use moment_policy_artifacts::{CORPUS_DIR, TELCO_RETENTION_WASM};
use serde_json::Map;

use moment_core::call::{History, Limits, PolicyError, PolicyInput, Scored};
use moment_core::model::policy::EngineKind;

use super::{CompileError, Engines, Program};

fn module(name: &str) -> Vec<u8> {
    wat::parse_file(format!("{CORPUS_DIR}/{name}.wat")).unwrap()
}

fn run_with(name: &str, limits: Limits) -> Result<Vec<Scored>, PolicyError> {
    let engines = Engines::new(limits).unwrap();
    run_on(&engines, &module(name))
}

/// Compiles `wasm` on `engines` and runs it on a document with no candidates.
fn run_on(engines: &Engines, wasm: &[u8]) -> Result<Vec<Scored>, PolicyError> {
    let program = engines.compile(EngineKind::Wasm, wasm).unwrap();
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
    engines.run(&program, &input, engines.limits())
}

fn run(name: &str) -> Result<Vec<Scored>, PolicyError> {
    run_with(name, Limits::default())
}

#[test]
fn well_behaved_module_ranks() {
    assert_eq!(
        run("well_behaved").unwrap(),
        [Scored {
            id: "generic-welcome".into(),
            score: 1.0
        }]
    );
}

#[test]
fn endless_loop_is_stopped_by_fuel_or_by_the_deadline() {
    let fuel = Limits {
        wasm_fuel: 100_000,
        deadline: Duration::from_secs(10),
        ..Limits::default()
    };
    assert_eq!(run_with("loop_forever", fuel), Err(PolicyError::Fuel));
    let deadline = Limits {
        wasm_fuel: u64::MAX,
        deadline: Duration::from_millis(10),
        ..Limits::default()
    };
    assert_eq!(
        run_with("loop_forever", deadline),
        Err(PolicyError::Deadline)
    );
}

#[test]
fn each_hostile_module_fails_with_its_own_variant() {
    assert!(matches!(run("trap"), Err(PolicyError::Trap(_))));
    assert_eq!(run("grow_memory"), Err(PolicyError::Memory));
    assert_eq!(run("recurse"), Err(PolicyError::StackOverflow));
    assert!(matches!(
        run("out_of_bounds"),
        Err(PolicyError::BadOutput(_))
    ));
    assert_eq!(run("huge_output"), Err(PolicyError::OutputTooLarge));
    assert!(matches!(run("not_json"), Err(PolicyError::BadOutput(_))));
    // The engine returns the id; arbitration refuses it (see pipeline::rank).
    assert_eq!(run("unknown_action").unwrap()[0].id, "no-such-action");
}

#[test]
fn input_over_the_cap_is_refused_before_the_call() {
    let tiny = Limits {
        max_input_bytes: 8,
        ..Limits::default()
    };
    assert!(matches!(
        run_with("well_behaved", tiny),
        Err(PolicyError::InputTooLarge(_))
    ));
}

#[test]
fn uploads_outside_the_abi_are_refused() {
    let engines = Engines::new(Limits::default()).unwrap();
    let compile = |bytes: &[u8]| engines.compile(EngineKind::Wasm, bytes).err();
    assert!(matches!(
        compile(&module("wasi_import")),
        Some(CompileError::Abi(_))
    ));
    assert!(matches!(
        compile(&module("no_exports")),
        Some(CompileError::Abi(_))
    ));
    assert!(matches!(
        compile(b"definitely not wasm"),
        Some(CompileError::NotWasm(_))
    ));
    assert!(matches!(
        compile(b"\0asm\x01\0\0\0garbage"),
        Some(CompileError::NotWasm(_))
    ));
    // 1000 pages (62.5 MiB) minimum could never be instantiated under the 16 MiB cap.
    let greedy = wat::parse_str(
        r#"(module (memory (export "memory") 1000)
             (func (export "moment_alloc") (param i32) (result i32) i32.const 0)
             (func (export "moment_decide") (param i32 i32) (result i64) i64.const 0))"#,
    )
    .unwrap();
    assert!(matches!(compile(&greedy), Some(CompileError::Abi(_))));
    let big = Limits {
        max_code_bytes: 1024,
        ..Limits::default()
    };
    let small_cap = Engines::new(big).unwrap();
    assert!(matches!(
        small_cap.check_size(TELCO_RETENTION_WASM),
        Err(CompileError::TooLarge { .. })
    ));
}

#[test]
fn identical_modules_compile_once() {
    let engines = Engines::new(Limits::default()).unwrap();
    let a = engines
        .compile(EngineKind::Wasm, TELCO_RETENTION_WASM)
        .unwrap();
    let b = engines
        .compile(EngineKind::Wasm, TELCO_RETENTION_WASM)
        .unwrap();
    let (Program::Wasm(a), Program::Wasm(b)) = (a, b) else {
        panic!("not wasm")
    };
    assert!(a.same_compilation(&b));
}

#[test]
fn compiled_modules_are_kept_on_disk_and_a_bad_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let compiled = dir.path().join("compiled");
    let well_behaved = module("well_behaved");
    let expected = run("well_behaved");
    let with_dir = || Engines::with_compiled_dir(Limits::default(), compiled.clone()).unwrap();
    let files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&compiled)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };

    // Compiled and written on first use; one file, no temporary left over.
    assert_eq!(run_on(&with_dir(), &well_behaved), expected);
    let written = files();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].extension().unwrap(), "cwasm");
    let image = std::fs::read(&written[0]).unwrap();

    // A new engine (a restart) maps the file instead of compiling.
    assert_eq!(run_on(&with_dir(), &well_behaved), expected);
    assert_eq!(std::fs::read(&written[0]).unwrap(), image);

    // A file wasmtime refuses is compiled again and replaced.
    std::fs::write(&written[0], b"not a compiled module").unwrap();
    assert_eq!(run_on(&with_dir(), &well_behaved), expected);
    assert_eq!(files(), written);
    assert_ne!(
        std::fs::read(&written[0]).unwrap(),
        b"not a compiled module"
    );
}
