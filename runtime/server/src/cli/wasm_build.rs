//! Building a policy crate for `wasm32-unknown-unknown` with cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::{Failure, shown};

/// The target WASM policies are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// One line of cargo's `--message-format json` output that matters here.
#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

/// Builds the crate in `dir` (release, the library only) and returns the
/// module's path. Cargo's progress and any compiler errors go to stderr as
/// usual; a build that is fresh already costs a second.
pub fn build(dir: &Path) -> Result<PathBuf, Failure> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(Failure::Setup(format!(
            "{} has no Cargo.toml: `crate` must name the directory of a Rust crate",
            shown(dir).display()
        )));
    }
    check_target(dir)?;
    // `cargo` and `rustc` from PATH: with rustup, the toolchain the crate's
    // directory selects, the same for the check above and the build.
    let output = Command::new("cargo")
        .current_dir(dir)
        .args(["build", "--release", "--lib", "--target", TARGET])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::Setup(format!("cannot run cargo to build the policy: {e}")))?;
    if !output.status.success() {
        return Err(Failure::Failed(format!(
            "the policy crate in {} does not build (cargo's errors are above)",
            shown(dir).display()
        )));
    }
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Message>(line).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .flat_map(|m| m.filenames)
        .rfind(|f| f.extension().is_some_and(|e| e == "wasm"));
    built.ok_or_else(|| {
        Failure::Setup(format!(
            "building {} made no .wasm module: its Cargo.toml needs `[lib] crate-type = [\"cdylib\"]`",
            shown(dir).display()
        ))
    })
}

/// Refuses to build when the toolchain that would build `dir` lacks the
/// wasm32 standard library, saying how to add it.
fn check_target(dir: &Path) -> Result<(), Failure> {
    let asked = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| Failure::Setup(format!("cannot run rustc to build the policy: {e}")))?;
    if !asked.status.success() {
        return Err(Failure::Setup(format!(
            "rustc failed in {}: {}",
            shown(dir).display(),
            String::from_utf8_lossy(&asked.stderr).trim()
        )));
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&asked.stdout).trim());
    match sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        true => Ok(()),
        false => Err(Failure::Setup(format!(
            "the {TARGET} target is not installed for the toolchain that builds {}: \
             run `rustup target add {TARGET}` there",
            shown(dir).display()
        ))),
    }
}
