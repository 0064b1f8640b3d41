//! A policy directory: `moment.toml`, the code, the catalog and the cases.
//!
//! ```toml
//! point = "retention-call"        # the decision point: the policy's name on the server
//! engine = "rhai"                 # or "wasm"
//! source = "policy.rhai"          # rhai: the script
//! # crate = "."                   # wasm: the crate to build for wasm32-unknown-unknown
//! # module = "policy.wasm"        # wasm: a built module, when there is no crate
//! catalog = "catalog.json"        # JSON or YAML: a list of actions
//! fallback = ["generic-welcome"]  # served when the policy fails
//! cases = "cases.json"            # JSON or YAML, or a directory of such files
//! # stages = ["prospect", "at-risk"]   # the tenant's stages, if not a new tenant's
//!
//! [limits]                        # the tenant's own limits, if it has any
//! # deadline_ms = 20
//! ```

use std::path::{Path, PathBuf};

use moment_core::call::TenantLimits;
use moment_core::model::Name;
use moment_core::model::policy::{Action, Bundle, EngineKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Failure, read, read_text, shown, wasm_build};

/// The file that makes a directory a policy.
pub const MANIFEST: &str = "moment.toml";

/// `moment.toml`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The decision point, which is the policy's name on the server.
    pub point: String,
    /// Which engine runs the code.
    pub engine: EngineKind,
    /// The Rhai script (engine `rhai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The Rust crate to build for `wasm32-unknown-unknown` (engine `wasm`).
    #[serde(default, rename = "crate", skip_serializing_if = "Option::is_none")]
    pub krate: Option<PathBuf>,
    /// A built WebAssembly module (engine `wasm`, without `crate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<PathBuf>,
    /// The catalog: a JSON or YAML list of actions (or a bundle,
    /// `{"catalog": […], "fallback": […]}`).
    pub catalog: PathBuf,
    /// Ids of the actions served when the policy fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Vec<String>>,
    /// The test cases: a JSON or YAML file, or a directory of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cases: Option<PathBuf>,
    /// The tenant's life-cycle stages, which a case's stage must be one of
    /// (default: those a new tenant gets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<String>>,
    /// The tenant's own limits (tighter than the server's defaults).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: TenantLimits,
}

fn is_default(limits: &TenantLimits) -> bool {
    *limits == TenantLimits::default()
}

/// A catalog file in the bundle form.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    catalog: Vec<Action>,
    #[serde(default)]
    fallback: Vec<String>,
}

/// An opened policy directory.
#[derive(Debug)]
pub struct Project {
    /// The directory the manifest is in; its paths are relative to it.
    pub dir: PathBuf,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// What it says.
    pub manifest: Manifest,
    /// Its decision point, checked.
    pub point: Name,
}

/// How to get a WASM policy's module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Build the crate (a no-op when cargo finds it fresh).
    Crate,
    /// Use the built module named by `module`.
    Module,
}

impl Project {
    /// Opens `path`: a directory holding `moment.toml`, or a manifest file.
    pub fn open(path: &Path) -> Result<Self, Failure> {
        let manifest_path = match path.is_dir() {
            true => path.join(MANIFEST),
            false => path.to_path_buf(),
        };
        if !manifest_path.is_file() {
            return Err(Failure::Setup(format!(
                "{} is not a policy directory: it has no {MANIFEST} (`moment policy new NAME` makes one)",
                shown(path).display()
            )));
        }
        let text = read_text(&manifest_path)?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((0, 0), |span| line_column(&text, span.start));
            Failure::Setup(pointed(&manifest_path, &text, line, column, e.message()))
        })?;
        let point = Name::parse(&manifest.point).map_err(|e| {
            Failure::Setup(format!(
                "{}: point {:?} cannot name a decision point: it {e}",
                shown(&manifest_path).display(),
                manifest.point
            ))
        })?;
        // Absolute, so that paths stay right wherever a tool runs.
        let dir = manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = std::fs::canonicalize(dir)
            .map_err(|e| Failure::Setup(format!("cannot open {}: {e}", dir.display())))?;
        let project = Self {
            dir,
            manifest_path,
            manifest,
            point,
        };
        project.check_code_fields()?;
        Ok(project)
    }

    /// A path of the manifest, resolved against the directory.
    pub fn path(&self, relative: &Path) -> PathBuf {
        match relative == Path::new(".") {
            true => self.dir.clone(),
            false => self.dir.join(relative),
        }
    }

    fn check_code_fields(&self) -> Result<(), Failure> {
        let m = &self.manifest;
        let wrong = |what: &str| {
            Err(Failure::Setup(format!(
                "{}: {what}",
                shown(&self.manifest_path).display()
            )))
        };
        match m.engine {
            EngineKind::Rhai if m.source.is_none() => {
                wrong("engine \"rhai\" needs `source`, the script's file")
            }
            EngineKind::Rhai if m.krate.is_some() || m.module.is_some() => {
                wrong("engine \"rhai\" takes `source`, not `crate` or `module`")
            }
            EngineKind::Wasm if m.krate.is_none() && m.module.is_none() => wrong(
                "engine \"wasm\" needs `crate` (a Rust crate on moment-sdk) or `module` (a built .wasm file)",
            ),
            EngineKind::Wasm if m.source.is_some() => {
                wrong("engine \"wasm\" takes `crate` or `module`, not `source`")
            }
            _ => Ok(()),
        }
    }

    /// The catalog and fallback ids: the manifest's `fallback`, else the
    /// bundle file's.
    pub fn catalog(&self) -> Result<(Vec<Action>, Vec<String>), Failure> {
        let path = self.path(&self.manifest.catalog);
        // Read once for its shape, then as that shape, so that a mistake
        // is pointed at where it is.
        let (catalog, fallback) = match parse_file::<serde_json::Value>(&path)? {
            serde_json::Value::Object(_) => {
                let bundle: BundleFile = parse_file(&path)?;
                (bundle.catalog, bundle.fallback)
            }
            _ => (parse_file::<Vec<Action>>(&path)?, Vec::new()),
        };
        Ok((catalog, self.manifest.fallback.clone().unwrap_or(fallback)))
    }

    /// The catalog checked and indexed, as the server checks an upload.
    pub fn bundle(&self) -> Result<Bundle, Failure> {
        let (catalog, fallback) = self.catalog()?;
        Bundle::new(catalog, &fallback).map_err(|e| {
            Failure::Setup(format!(
                "{}: {e}",
                shown(&self.path(&self.manifest.catalog)).display()
            ))
        })
    }

    /// The policy's code: the Rhai source, or the WASM module (built from
    /// the crate with [`Build::Crate`]).
    pub fn code(&self, build: Build) -> Result<Vec<u8>, Failure> {
        let m = &self.manifest;
        match (m.engine, &m.source, &m.krate, &m.module) {
            (EngineKind::Rhai, Some(source), _, _) => read(&self.path(source)),
            (EngineKind::Wasm, _, Some(krate), _) if build == Build::Crate => {
                read(&wasm_build::build(&self.path(krate))?)
            }
            (EngineKind::Wasm, _, _, Some(module)) => read(&self.path(module)),
            (EngineKind::Wasm, _, Some(_), None) => Err(Failure::Setup(
                "this policy has no built `module`; build its crate instead (leave out --no-build)"
                    .to_owned(),
            )),
            _ => Err(Failure::Setup(format!(
                "{}: no code to run",
                shown(&self.manifest_path).display()
            ))),
        }
    }

    /// The file the code came from, to point compile errors at.
    pub fn source_path(&self) -> Option<PathBuf> {
        self.manifest.source.as_deref().map(|s| self.path(s))
    }

    /// Every case file: `cases` itself, or the `.json`, `.yaml` and `.yml`
    /// files in that directory, by name.
    pub fn case_files(&self) -> Result<Vec<PathBuf>, Failure> {
        let Some(cases) = &self.manifest.cases else {
            return Ok(Vec::new());
        };
        let path = self.path(cases);
        if !path.is_dir() {
            return Ok(vec![path]);
        }
        let entries = std::fs::read_dir(&path)
            .map_err(|e| Failure::Setup(format!("cannot list {}: {e}", shown(&path).display())))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .collect();
        files.sort();
        Ok(files)
    }
}

/// Parses a JSON or YAML file (by its extension; JSON otherwise), pointing
/// at the line and column of an error.
pub fn parse_file<T: DeserializeOwned>(path: &Path) -> Result<T, Failure> {
    let text = read_text(path)?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let parsed = match yaml {
        true => yaml_serde::from_str(&text).map_err(|e| {
            let at = e.location().map(|l| (l.line(), l.column()));
            (at, e.to_string())
        }),
        false => {
            serde_json::from_str(&text).map_err(|e| (Some((e.line(), e.column())), e.to_string()))
        }
    };
    parsed.map_err(|(at, mut message)| {
        // The position is shown with the line itself.
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        let (line, column) = at.unwrap_or((0, 0));
        Failure::Setup(pointed(path, &text, line, column, &message))
    })
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `file:line:column: message`, then the line itself with a caret under
/// the column (1-based; line 0 when the position is unknown).
pub fn pointed(path: &Path, text: &str, line: usize, column: usize, message: &str) -> String {
    let file = shown(path);
    let Some(source) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) else {
        return format!("{}: {message}", file.display());
    };
    let gutter = " ".repeat(line.to_string().len());
    let caret = " ".repeat(column.saturating_sub(1));
    format!(
        "{}:{line}:{column}: {message}\n {line} | {source}\n {gutter} | {caret}^",
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Result<Project, Failure>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("written");
        }
        let project = Project::open(dir.path());
        (dir, project)
    }

    #[test]
    fn reads_a_yaml_catalog_and_cases_directory() {
        let (dir, project) = open_with(&[
            (
                MANIFEST,
                "point = \"p\"\nengine = \"rhai\"\nsource = \"p.rhai\"\ncatalog = \"catalog.yaml\"\nfallback = [\"b\"]\ncases = \"cases\"\n",
            ),
            (
                "catalog.yaml",
                "- id: a\n  kind: offer\n  value: 2\n  tags: [x]\n- id: b\n  kind: message\n",
            ),
        ]);
        let project = project.expect("a project");
        let bundle = project.bundle().expect("a valid catalog");
        assert_eq!(bundle.actions().len(), 2);
        assert_eq!(bundle.fallback(), [1]);
        std::fs::create_dir(dir.path().join("cases")).expect("created");
        for name in ["b.yml", "a.json", "notes.txt"] {
            std::fs::write(dir.path().join("cases").join(name), "[]").expect("written");
        }
        let files = project.case_files().expect("listed");
        let names: Vec<_> = files.iter().filter_map(|f| f.file_name()).collect();
        assert_eq!(names, ["a.json", "b.yml"]);
    }

    #[test]
    fn points_at_the_line_and_column_of_a_mistake() {
        let (_dir, project) = open_with(&[
            (
                MANIFEST,
                "point = \"p\"\nengine = \"rhai\"\nsource = \"p.rhai\"\ncatalog = \"catalog.json\"\n",
            ),
            (
                "catalog.json",
                "[\n  {\"id\": \"a\", \"kind\": \"offre\"}\n]\n",
            ),
        ]);
        let Err(Failure::Setup(message)) = project.expect("a project").bundle() else {
            panic!("a bad catalog is a setup failure");
        };
        assert!(message.contains("catalog.json:2:"), "{message}");
        assert!(
            message.contains("{\"id\": \"a\", \"kind\": \"offre\"}"),
            "{message}"
        );
        assert!(message.contains('^'), "{message}");

        let (_dir, project) = open_with(&[(MANIFEST, "point = \"p\"\nengine = \"lua\"\n")]);
        let Err(Failure::Setup(message)) = project else {
            panic!("a bad manifest is a setup failure");
        };
        assert!(message.contains("moment.toml:2:"), "{message}");
    }

    #[test]
    fn a_manifest_names_code_its_engine_can_run() {
        let (_dir, project) = open_with(&[(
            MANIFEST,
            "point = \"p\"\nengine = \"wasm\"\nsource = \"p.rhai\"\ncatalog = \"c.json\"\n",
        )]);
        let Err(Failure::Setup(message)) = project else {
            panic!("refused");
        };
        assert!(
            message.contains("engine \"wasm\" needs `crate`"),
            "{message}"
        );
    }
}
