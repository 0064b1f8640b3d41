//! `moment policy new`: a policy directory that passes its own tests.
//!
//! Both engines get the same catalog, cases and scoring, so an author can
//! compare them. A WASM policy is a crate on `moment-sdk`; since the SDK is
//! not on crates.io, the SDK this binary was built with is written beside
//! it (`moment-sdk/`), unless `--sdk` names a checkout to use instead.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use moment_core::model::Name;

use super::project::MANIFEST;
use super::{Failure, shown, write};

/// `moment policy new NAME`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The decision point the policy answers; also the directory's name.
    pub name: String,
    /// The engine: a Rhai script, or a Rust crate built to WebAssembly.
    #[arg(long, value_enum, default_value_t = Engine::Rhai)]
    pub engine: Engine,
    /// Where to create it (default: ./NAME). It must not exist yet.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// WASM: use the moment-sdk crate at this path rather than writing a copy.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// An engine to scaffold for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Engine {
    /// A Rhai script: `policy.rhai`.
    Rhai,
    /// A Rust crate on moment-sdk, built for wasm32-unknown-unknown.
    Wasm,
}

const CATALOG: &str = include_str!("../../scaffold/catalog.json");
const CASES: &str = include_str!("../../scaffold/cases.json");
const RHAI: &str = include_str!("../../scaffold/policy.rhai");
const LIB_RS: &str = include_str!("../../scaffold/lib.rs");
const CARGO_TOML: &str = include_str!("../../scaffold/Cargo.toml");
const GITIGNORE: &str = include_str!("../../scaffold/gitignore");

/// The SDK's sources, as this binary was built with them.
const SDK_SOURCES: [(&str, &str); 5] = [
    ("lib.rs", include_str!("../../../../sdk/src/lib.rs")),
    ("abi.rs", include_str!("../../../../sdk/src/abi.rs")),
    ("context.rs", include_str!("../../../../sdk/src/context.rs")),
    ("ranked.rs", include_str!("../../../../sdk/src/ranked.rs")),
    ("testing.rs", include_str!("../../../../sdk/src/testing.rs")),
];

/// The SDK's manifest outside Moment's workspace: the same dependencies
/// (a test holds them to `sdk/Cargo.toml`), with versions spelled out.
pub const SDK_CARGO_TOML: &str = r#"[package]
name = "moment-sdk"
description = "Guest SDK for Moment WebAssembly policies: typed input, typed output, ABI v1 exports"
version = "0.1.0"
edition = "2024"
license = "Apache-2.0"
publish = false

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[target.'cfg(target_arch = "wasm32")'.dependencies]
lol_alloc = "0.4"
"#;

/// Creates the policy directory.
pub fn new(args: NewArgs) -> Result<(), Failure> {
    Name::parse(&args.name).map_err(|e| {
        Failure::Setup(format!(
            "{:?} cannot name a decision point: it {e}",
            args.name
        ))
    })?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() {
        return Err(Failure::Setup(format!(
            "{} exists already; choose another --dir",
            dir.display()
        )));
    }
    let fill = |text: &str| text.replace("{name}", &args.name);
    let fill_crate = |text: &str| text.replace("{name}", &crate_name(&args.name));
    let files: Vec<(PathBuf, String)> = match args.engine {
        Engine::Rhai => vec![
            (
                MANIFEST.into(),
                manifest(&args.name, "rhai", "source = \"policy.rhai\""),
            ),
            ("policy.rhai".into(), fill(RHAI)),
        ],
        Engine::Wasm => {
            let sdk = match &args.sdk {
                Some(path) => std::path::absolute(path)
                    .map_err(|e| Failure::Setup(format!("--sdk {}: {e}", path.display())))?,
                None => PathBuf::from("moment-sdk"),
            };
            let mut files = vec![
                (
                    MANIFEST.into(),
                    manifest(&args.name, "wasm", "crate = \".\""),
                ),
                (
                    "Cargo.toml".into(),
                    fill_crate(CARGO_TOML).replace("{sdk}", &sdk.display().to_string()),
                ),
                ("src/lib.rs".into(), fill(LIB_RS)),
                (".gitignore".into(), GITIGNORE.to_owned()),
            ];
            if args.sdk.is_none() {
                files.push(("moment-sdk/Cargo.toml".into(), SDK_CARGO_TOML.to_owned()));
                for (name, text) in SDK_SOURCES {
                    files.push((Path::new("moment-sdk/src").join(name), text.to_owned()));
                }
            }
            files
        }
    };
    let files = files.into_iter().chain([
        ("catalog.json".into(), CATALOG.to_owned()),
        ("cases.json".into(), CASES.to_owned()),
    ]);
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::Setup(format!("cannot create {}: {e}", parent.display())))?;
        }
        write(&path, text)?;
    }
    println!(
        "created {} ({} policy for decision point {:?}); next:\n  moment policy test {}",
        shown(&dir).display(),
        match args.engine {
            Engine::Rhai => "a Rhai",
            Engine::Wasm => "a WebAssembly",
        },
        args.name,
        shown(&dir).display()
    );
    Ok(())
}

/// A cargo package name for decision point `point`: points may hold `.`
/// and start with a digit, package names may not.
fn crate_name(point: &str) -> String {
    let name = point.replace('.', "-");
    match name.starts_with(|c: char| c.is_ascii_digit()) {
        true => format!("policy-{name}"),
        false => name,
    }
}

/// The new policy's `moment.toml`.
fn manifest(name: &str, engine: &str, code: &str) -> String {
    format!(
        r#"# A Moment policy: `moment policy test` runs its cases here, with no
# server; `moment policy push` uploads it as a new version of "{name}".
point = "{name}"
engine = "{engine}"
{code}
# The actions the policy ranks (JSON or YAML), and those served when it fails.
catalog = "catalog.json"
fallback = ["newsletter"]
# Test cases: a JSON or YAML file, or a directory of them.
cases = "cases.json"
# The tenant's stages, which a case's stage must be one of (default: a new
# tenant's: consideration, evaluation, purchase, post-purchase, at-risk):
# stages = ["prospect", "customer", "at-risk"]

# The tenant's own limits, if it has any (each only tighter than the server's):
# [limits]
# deadline_ms = 20
# rhai_max_operations = 1000000
# wasm_fuel = 100000000
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_gets_a_package_name_cargo_takes() {
        assert_eq!(crate_name("offers"), "offers");
        assert_eq!(crate_name("offers.v2"), "offers-v2");
        assert_eq!(crate_name("2fa_help"), "policy-2fa_help");
    }

    /// The copy of the SDK a new WASM policy gets is the whole SDK.
    #[test]
    fn the_written_sdk_has_every_source_file() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/src");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("the SDK's sources")
            .filter_map(|e| Some(e.ok()?.file_name().to_str()?.to_owned()))
            .collect();
        files.sort();
        let mut written: Vec<&str> = SDK_SOURCES.iter().map(|(name, _)| *name).collect();
        written.sort();
        assert_eq!(files, written);
    }

    /// The copy of the SDK a new WASM policy gets needs what the SDK needs.
    #[test]
    fn the_written_sdk_has_the_sdks_dependencies() {
        let ours: toml::Table = toml::from_str(SDK_CARGO_TOML).expect("valid TOML");
        let sdk: toml::Table =
            toml::from_str(include_str!("../../../../sdk/Cargo.toml")).expect("valid TOML");
        let names = |t: &toml::Table, key: &str| -> Vec<String> {
            let section = match key {
                "wasm32" => t
                    .get("target")
                    .and_then(|t| t.get("cfg(target_arch = \"wasm32\")"))
                    .and_then(|t| t.get("dependencies")),
                _ => t.get("dependencies"),
            };
            section
                .and_then(toml::Value::as_table)
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default()
        };
        for section in ["dependencies", "wasm32"] {
            assert_eq!(names(&ours, section), names(&sdk, section), "{section}");
            assert!(!names(&ours, section).is_empty());
        }
    }
}
