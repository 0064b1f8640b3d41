//! The policy author's commands: `moment policy new|test|push|pull|diff|list|activate`,
//! `moment decide`, `moment try` and `moment experiment results`.
//!
//! A policy is a directory described by `moment.toml` ([`project`]).
//! `policy test` runs its cases locally, through the server's own engines
//! and pipeline ([`testing`]); the other commands talk to a running server
//! ([`client`], [`remote`]).
//!
//! Every command prints for people, or with `--json` for scripts, and exits
//! with a code CI can trust: [`Failure::code`].

pub mod cases;
pub mod client;
pub mod project;
pub mod remote;
pub mod scaffold;
pub mod testing;
pub mod wasm_build;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// Why a command did not succeed; each kind has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Tests failed, or the server refused the request (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The command line, a file or the local setup is wrong (exit 2, as
    /// for a command-line error).
    #[error("{0}")]
    Setup(String),
    /// The server could not be reached or failed (exit 3).
    #[error("{0}")]
    Server(String),
}

impl Failure {
    /// The process exit code for this failure.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Failed(_) => 1,
            Failure::Setup(_) => 2,
            Failure::Server(_) => 3,
        }
    }
}

/// How results are printed.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct Output {
    /// Print the result as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Which server the remote commands talk to, and with which key: `--url`
/// and `--key` first; then the profile `--profile` (or `MOMENT_PROFILE`)
/// names; else `MOMENT_URL` and `MOMENT_KEY`; else the `[default]` profile
/// ([`client`] has the profiles file).
#[derive(Args, Clone, Debug, Default)]
pub struct Remote {
    /// The server's base URL (else the profile's, or MOMENT_URL).
    #[arg(long)]
    pub url: Option<String>,
    /// An API key of your tenant (else the profile's, or MOMENT_KEY): an
    /// editor or admin key; `moment decide` also takes a decide key.
    #[arg(long)]
    pub key: Option<String>,
    /// A profile of the profiles file ($MOMENT_PROFILES, else
    /// ~/.config/moment/profiles.toml): `[NAME]` with `url` and `key`.
    #[arg(long, env = "MOMENT_PROFILE")]
    pub profile: Option<String>,
}

/// Working on policies.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Create a policy directory that passes its own tests.
    New(scaffold::NewArgs),
    /// Run a policy's test cases locally: no server, no network.
    Test(testing::TestArgs),
    /// Upload the directory as a new version (and make it live with --activate).
    Push(remote::PushArgs),
    /// Write a stored version out as a policy directory.
    Pull(remote::PullArgs),
    /// Show what changed between two stored versions.
    Diff(remote::DiffArgs),
    /// List the tenant's policies, or one policy's versions.
    List(remote::ListArgs),
    /// Make a stored version live (also how to roll back).
    Activate(remote::ActivateArgs),
}

/// Working on experiments.
#[derive(Subcommand, Debug)]
pub enum ExperimentCommand {
    /// An experiment's results as a table.
    Results(remote::ResultsArgs),
}

/// Runs a `moment policy` command.
pub async fn policy(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::New(args) => scaffold::new(args),
        PolicyCommand::Test(args) => testing::test(args),
        PolicyCommand::Push(args) => remote::push(args).await,
        PolicyCommand::Pull(args) => remote::pull(args).await,
        PolicyCommand::Diff(args) => remote::diff(args).await,
        PolicyCommand::List(args) => remote::list(args).await,
        PolicyCommand::Activate(args) => remote::activate(args).await,
    }
}

/// Runs a `moment experiment` command.
pub async fn experiment(command: ExperimentCommand) -> Result<(), Failure> {
    match command {
        ExperimentCommand::Results(args) => remote::results(args).await,
    }
}

/// The exit code of a command's outcome, after printing its failure.
pub fn exit(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: the result could not be encoded as JSON: {e}"),
    }
}

/// Reads a file, saying which one could not be read.
fn read(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Setup(format!("cannot read {}: {e}", path.display())))
}

/// Reads a text file, saying which one could not be read.
fn read_text(path: &std::path::Path) -> Result<String, Failure> {
    String::from_utf8(read(path)?)
        .map_err(|_| Failure::Setup(format!("{} is not UTF-8 text", path.display())))
}

/// Writes a file, saying which one could not be written.
fn write(path: &std::path::Path, bytes: impl AsRef<[u8]>) -> Result<(), Failure> {
    std::fs::write(path, bytes)
        .map_err(|e| Failure::Setup(format!("cannot write {}: {e}", path.display())))
}

/// `path` relative to the working directory when it is under it, for messages.
fn shown(path: &std::path::Path) -> PathBuf {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(PathBuf::from));
    match relative {
        Some(relative) if relative.as_os_str().is_empty() => PathBuf::from("."),
        Some(relative) => relative,
        None => path.to_path_buf(),
    }
}
