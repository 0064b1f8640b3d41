//! The committed `policy.wasm` files are what their sources build to.
//!
//! The server embeds the reference policies as committed bytes, so neither
//! `cargo run` nor the server's tests need the `wasm32-unknown-unknown`
//! target. This test rebuilds both policies from source, the way they were
//! built for the commit, and requires the same bytes. Builds are
//! reproducible only on one compiler, so the build runs on Rust
//! [`TOOLCHAIN`]: the active toolchain when it is that version, else that
//! toolchain installed (minimal profile) with rustup. It adds the wasm32
//! target when missing, the only part of the test suite that needs it.
//!
//! After changing a policy, the SDK or [`TOOLCHAIN`], write the new bytes:
//! `MOMENT_BLESS_WASM=1 cargo test -p moment-policy-artifacts --test rebuild`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The compiler the committed modules were built with.
const TOOLCHAIN: &str = "1.95.0";

/// The one target policies are built for.
const TARGET: &str = "wasm32-unknown-unknown";

/// Each policy: its directory under `policies/` and its package.
const POLICIES: [(&str, &str); 2] = [
    ("telco-retention", "moment-policy-telco-retention"),
    ("kiosk-basket", "moment-policy-kiosk-basket"),
];

/// Inherited variables that would distort the nested build: the outer
/// build's rustflags, target and target directory, wrappers and jobserver.
const CLEARED: [&str; 13] = [
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTUP_TOOLCHAIN",
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

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn rustup(args: &[&str]) -> bool {
    Command::new("rustup")
        .args(args)
        .status()
        .expect("rustup is needed to rebuild the reference policies")
        .success()
}

fn rustup_output(args: &[&str]) -> Option<String> {
    let out = Command::new("rustup")
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("rustup is needed to rebuild the reference policies");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The toolchain to build with, with the wasm32 target: the active one
/// when it is Rust [`TOOLCHAIN`] (no download), else [`TOOLCHAIN`] itself,
/// installed (minimal profile) if missing. An installed toolchain is never
/// reinstalled: that would pull its compiler from under builds running
/// beside this test; only a missing target is added.
fn ensure_toolchain() -> String {
    let version = |toolchain: &str| rustup_output(&["run", toolchain, "rustc", "--version"]);
    let active = rustup_output(&["show", "active-toolchain"])
        .and_then(|line| line.split_whitespace().next().map(str::to_owned))
        .filter(|active| {
            version(active).is_some_and(|v| v.starts_with(&format!("rustc {TOOLCHAIN} ")))
        });
    let toolchain = active.unwrap_or_else(|| TOOLCHAIN.to_owned());
    if version(&toolchain).is_none() {
        assert!(
            rustup(&["toolchain", "install", &toolchain, "--profile", "minimal"]),
            "cannot install Rust {toolchain}"
        );
    }
    let libdir = rustup_output(&[
        "run",
        &toolchain,
        "rustc",
        "--print",
        "target-libdir",
        "--target",
        TARGET,
    ])
    .map(PathBuf::from);
    if !libdir.is_some_and(|dir| dir.is_dir()) {
        assert!(
            rustup(&["target", "add", "--toolchain", &toolchain, TARGET]),
            "cannot add {TARGET} to {toolchain}"
        );
    }
    toolchain
}

/// Builds both policies with `toolchain` into `target_dir`; answers where
/// the modules are.
fn build(toolchain: &str, target_dir: &Path) -> PathBuf {
    let workspace = workspace();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap();
    // Paths in panic locations would otherwise differ between checkouts.
    let rustflags = format!(
        "-Clink-arg=-zstack-size=65536 --remap-path-prefix={}=/moment --remap-path-prefix={}=/cargo",
        workspace.display(),
        cargo_home.display(),
    );
    let mut command = Command::new("rustup");
    command
        .args(["run", toolchain, "cargo", "build", "--release", "--locked"])
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for (_, package) in POLICIES {
        command.args(["-p", package]);
    }
    for key in CLEARED {
        command.env_remove(key);
    }
    command
        .envs(PROFILE)
        // A 64 KiB shadow stack instead of wasm-ld's 1 MiB: a policy's memory
        // then starts at 2 pages, and the host resets only what it touched.
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS", rustflags);
    let status = command.status().expect("cannot run cargo");
    assert!(status.success(), "building the reference policies failed");
    target_dir.join(TARGET).join("release")
}

#[test]
fn committed_modules_are_what_the_sources_build_to() {
    let toolchain = ensure_toolchain();
    let workspace = workspace();
    let release = build(&toolchain, &workspace.join("target").join("wasm-policies"));
    let bless = std::env::var_os("MOMENT_BLESS_WASM").is_some();
    let mut stale = Vec::new();
    for (dir, package) in POLICIES {
        let built =
            std::fs::read(release.join(format!("{}.wasm", package.replace('-', "_")))).unwrap();
        let committed_path = workspace.join("policies").join(dir).join("policy.wasm");
        let committed = std::fs::read(&committed_path).unwrap_or_default();
        if built == committed {
            continue;
        }
        if bless {
            std::fs::write(&committed_path, &built).unwrap();
        } else {
            stale.push(format!(
                "{} ({} bytes) differs from the {} bytes its source builds to",
                committed_path.display(),
                committed.len(),
                built.len()
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nrebuild them with: MOMENT_BLESS_WASM=1 cargo test -p moment-policy-artifacts --test rebuild",
        stale.join("\n")
    );
}
