//! The `moment` binary: parses the command line; runs the server (with
//! logging and the metrics recorder) or one of the policy author's commands
//! ([`moment_server::cli`]).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::PrometheusBuilder;
use moment_engines::memory::Accounting;
use moment_server::app::Application;
use moment_server::cli;
use moment_server::settings::Settings;
use moment_server::telemetry;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: a decision allocates and frees many
/// small objects (JSON maps and strings, the decision record), where glibc's
/// malloc and free were ~14% of the server's CPU under load. Counted per
/// thread, so that a Rhai call is held to its heap budget.
#[global_allocator]
static ALLOCATOR: Accounting<mimalloc::MiMalloc> = Accounting(mimalloc::MiMalloc);

/// Moment: next-best-action decisions. `moment serve` runs the server; the
/// other commands are for the people who write policies and run experiments.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the decision server.
    Serve(Settings),
    /// Write, test and ship policies: a policy is a directory with a moment.toml.
    #[command(subcommand)]
    Policy(cli::PolicyCommand),
    /// Ask a server for one decision.
    Decide(cli::remote::DecideArgs),
    /// Try a stored version, or a local directory as a draft, for a customer:
    /// the answer with explain; nothing is logged.
    Try(cli::remote::TryArgs),
    /// Follow experiments.
    #[command(subcommand)]
    Experiment(cli::ExperimentCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let settings = match Cli::parse().command {
        Command::Serve(settings) => settings,
        Command::Policy(command) => return Ok(cli::exit(cli::policy(command).await)),
        Command::Decide(args) => return Ok(cli::exit(cli::remote::decide(args).await)),
        Command::Try(args) => return Ok(cli::exit(cli::remote::try_version(args).await)),
        Command::Experiment(command) => return Ok(cli::exit(cli::experiment(command).await)),
    };
    serve(settings).await.map(|()| ExitCode::SUCCESS)
}

/// `moment serve`.
async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("MOMENT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[
            0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
            0.1, 1.0,
        ])
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    telemetry::describe();
    // Histograms keep raw samples until upkeep folds them into buckets; a
    // server nobody scrapes would otherwise grow without bound.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });

    let app = Application::build(settings, Some(metrics))
        .await
        .context("starting moment")?;
    let addr = app.addr();
    // The first stdout line is machine-readable: tests and scripts read the port from it.
    println!("moment listening on http://{addr}");
    if let Some(keys) = app.demo_keys() {
        print_demo(&addr.to_string(), keys);
    }
    tracing::info!(%addr, "serving");
    app.run().await.context("serving")
}

fn print_demo(addr: &str, keys: &moment_server::demo::DemoKeys) {
    println!("demo tenant keys (shown once):");
    println!("  admin:  {}", keys.admin);
    println!("  editor: {}", keys.editor);
    println!("  decide: {}", keys.decide);
    println!("try a decision:");
    println!(
        "  curl -s http://{addr}/v1/decide -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\\n    -d '{{\"point\":\"retention-call\",\"customer_id\":\"c-42\",\"stage\":\"at-risk\",\"channel\":\"call-center\",\"attributes\":{{\"tenure_months\":14,\"complaints_90d\":2}},\"context\":{{\"reason\":\"price\"}}}}'",
        keys.decide
    );
    println!("open the console and sign in with the editor or admin key:");
    println!("  http://{addr}/console");
    println!("see an offer on a web page, and a kiosk that works offline:");
    println!("  http://{addr}/examples/web/#key={}", keys.decide);
    println!("  http://{addr}/examples/kiosk/#key={}", keys.decide);
}
