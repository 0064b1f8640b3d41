//! Builds the reference policies to `wasm32-unknown-unknown` from source, once
//! per test run, the way wasmtime's `crates/test-programs` does.
//!
//! A nested `cargo build --release` runs in a target directory of its own
//! (`<target>/wasm-policies`), so it never waits on the lock the outer build
//! holds. Inherited variables that would leak the outer build's flags,
//! wrappers or jobserver into it are cleared. The built files' paths reach
//! `src/lib.rs` as `MOMENT_*_WASM` environment variables.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, exit};

/// The one target policies are built for.
const TARGET: &str = "wasm32-unknown-unknown";

/// Each policy: its directory under `policies/`, its package, and the
/// variable that tells `src/lib.rs` where its `.wasm` is.
const POLICIES: [(&str, &str, &str); 2] = [
    (
        "telco-retention",
        "moment-policy-telco-retention",
        "MOMENT_TELCO_RETENTION_WASM",
    ),
    (
        "kiosk-basket",
        "moment-policy-kiosk-basket",
        "MOMENT_KIOSK_BASKET_WASM",
    ),
];

/// Inherited variables that would break or distort the nested build: the
/// outer build's rustflags (coverage, sanitizers, host-only flags), its
/// target and target directory, clippy's wrapper, and its jobserver.
const CLEARED: [&str; 12] = [
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
];

/// Release settings for lean, fast policies, whatever the workspace's
/// release profile says (it keeps line tables for the server's backtraces).
const PROFILE: [(&str, &str); 5] = [
    ("CARGO_PROFILE_RELEASE_DEBUG", "false"),
    ("CARGO_PROFILE_RELEASE_STRIP", "true"),
    ("CARGO_PROFILE_RELEASE_LTO", "true"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
    ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
];

/// A 64 KiB shadow stack instead of wasm-ld's 1 MiB default. A policy's
/// linear memory then starts at a few pages instead of 17, and the host
/// resets only the pages a decision touched (see `wasm_engine.rs`).
const RUSTFLAGS: (&str, &str) = (
    "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
    "-Clink-arg=-zstack-size=65536",
);

fn main() {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("..").join("..");
    rerun_if_changed(&workspace);
    check_target_installed();

    let target_dir = wasm_target_dir(Path::new(&var("OUT_DIR")));
    build(&workspace, &target_dir);

    let release = target_dir.join(TARGET).join("release");
    for (_, package, variable) in POLICIES {
        let wasm = release.join(format!("{}.wasm", package.replace('-', "_")));
        if !wasm.is_file() {
            fail(&format!(
                "the nested build did not produce {}",
                wasm.display()
            ));
        }
        println!("cargo:rustc-env={variable}={}", wasm.display());
    }
}

/// Rebuild when the SDK, a policy's sources or the workspace's manifest or
/// lock file change; nothing else feeds the nested build.
fn rerun_if_changed(workspace: &Path) {
    let mut inputs = vec![
        workspace.join("Cargo.toml"),
        workspace.join("Cargo.lock"),
        workspace.join("sdk").join("Cargo.toml"),
        workspace.join("sdk").join("src"),
    ];
    for (dir, _, _) in POLICIES {
        let policy = workspace.join("policies").join(dir);
        inputs.push(policy.join("Cargo.toml"));
        inputs.push(policy.join("src"));
    }
    for input in inputs {
        println!("cargo:rerun-if-changed={}", input.display());
    }
}

/// Fails with the fix when the toolchain lacks the wasm32 standard library.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if !libdir.is_some_and(|dir| dir.is_dir()) {
        fail(&format!(
            "the {TARGET} target is not installed, so the reference policies cannot be built; \
             install the target: rustup target add {TARGET}"
        ));
    }
}

/// `<target>/wasm-policies`, where `<target>` is the outer build's target
/// directory: the first ancestor of `OUT_DIR` holding cargo's `CACHEDIR.TAG`.
/// Falls back to a directory inside `OUT_DIR`.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .join("wasm-policies")
}

/// Runs the nested `cargo build` and fails with its output if it fails.
fn build(workspace: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--release")
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for (_, package, _) in POLICIES {
        command.args(["-p", package]);
    }
    for (key, _) in env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("CARGO_CFG_")) {
            command.env_remove(key);
        }
    }
    for key in CLEARED {
        command.env_remove(key);
    }
    command.envs(PROFILE);
    command.env(RUSTFLAGS.0, RUSTFLAGS.1);
    let output = command
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run cargo for the nested wasm build: {e}")));
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        fail(&format!(
            "building the reference policies for {TARGET} failed ({}); see the output above",
            output.status
        ));
    }
}

/// A build-script environment variable cargo always sets.
fn var(key: &str) -> String {
    env::var(key).unwrap_or_else(|_| fail(&format!("cargo did not set {key}")))
}

/// Reports `message` as a build error and stops.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo:warning={message}");
    exit(1)
}
