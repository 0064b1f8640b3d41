//! `moment policy test`: every case of a policy directory, run locally
//! through the server's own engines, limits and pipeline (eligibility,
//! contact rules, the policy, ranking, the limit, per-kind caps, the
//! fallback), with no server and no network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use moment_core::breaker::Breaker;
use moment_core::call::Limits;
use moment_core::model::Name;
use moment_core::model::policy::{Bundle, EngineKind};
use moment_core::pipeline::{DecideRequest, Explained, Subject};
use moment_engines::{CompileError, Engines};
use serde::Serialize;
use serde_json::Value;

use super::cases::{self, Case, DEFAULT_NOW_MS, Got};
use super::project::{Build, Project, parse_file, pointed};
use super::{Failure, Output, print_json, read_text, shown};
use crate::pipeline::{self, Decision};
use crate::registry::{LoadedPolicy, default_stages};
use crate::service::compile_detail;
use moment_targeting::SavedGroups;

/// `moment policy test [DIR]`.
#[derive(Args, Debug)]
pub struct TestArgs {
    /// The policy directory (or its moment.toml).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Show, for every case, what happened to each catalog action.
    #[arg(long)]
    pub explain: bool,
    /// Time each case and show the operations (Rhai) or fuel (WASM) it used
    /// against the limits.
    #[arg(long)]
    pub bench: bool,
    /// Run only the cases whose name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// WASM: use the built `module` rather than building the crate.
    #[arg(long)]
    pub no_build: bool,
    /// How to print.
    #[command(flatten)]
    pub output: Output,
}

/// The whole run, as `--json` prints it.
#[derive(Serialize)]
struct Report {
    point: String,
    engine: EngineKind,
    directory: String,
    passed: usize,
    failed: usize,
    cases: Vec<CaseReport>,
}

/// One case's result.
#[derive(Serialize)]
struct CaseReport {
    file: String,
    name: String,
    passed: bool,
    /// What differs from the expectation, line by line.
    problems: Vec<String>,
    /// The actions returned, with scores.
    actions: Vec<cases::Expected>,
    fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<FailureReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Vec<(String, Explained)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bench: Option<Bench>,
}

/// Why a case's policy call failed.
#[derive(Serialize)]
struct FailureReport {
    reason: &'static str,
    message: String,
}

/// A case's cost, from `--bench`.
#[derive(Serialize)]
struct Bench {
    /// Decisions timed.
    iterations: usize,
    /// Median time of a whole decision (screening, policy, arbitration), ns.
    decision_median_ns: u64,
    /// Median time of the policy call alone, ns.
    policy_median_ns: u64,
    /// Rhai operations, or WASM fuel, one call used.
    operations: u64,
    /// What the limits allow one call.
    operations_limit: u64,
    /// What `operations` counts: Rhai `operations`, or WASM `fuel`.
    unit: &'static str,
    /// The call's wall-clock deadline, ns.
    deadline_ns: u64,
}

/// What the cases run against: the engines, the compiled policy and the
/// tenant's settings from the manifest.
struct Runner {
    engines: Engines,
    policy: Arc<LoadedPolicy>,
    tenant_name: Name,
    /// A manifest names no saved groups: conditions see none.
    groups: SavedGroups,
    stages: Vec<String>,
    limits: Limits,
    /// Whether decisions are explained (`--explain`).
    explain: bool,
}

/// Runs `moment policy test`.
pub fn test(args: TestArgs) -> Result<(), Failure> {
    let project = Project::open(&args.dir)?;
    let bundle = project.bundle()?;
    let build = match args.no_build {
        true => Build::Module,
        false => Build::Crate,
    };
    let code = project.code(build)?;
    let runner = Runner::new(&project, bundle, &code, args.explain)?;
    let mut report = Report {
        point: project.point.to_string(),
        engine: project.manifest.engine,
        directory: shown(&project.dir).display().to_string(),
        passed: 0,
        failed: 0,
        cases: Vec::new(),
    };
    let files = project.case_files()?;
    for file in &files {
        let cases: Vec<Case> = parse_file(file)?;
        for case in cases {
            if args
                .filter
                .as_deref()
                .is_some_and(|f| !case.name.contains(f))
            {
                continue;
            }
            let mut result = runner.case(&case, args.bench);
            result.file = shown(file).display().to_string();
            match result.passed {
                true => report.passed += 1,
                false => report.failed += 1,
            }
            report.cases.push(result);
        }
    }
    match args.output.json {
        true => print_json(&report),
        false => print_report(&report, &runner),
    }
    let total = report.passed + report.failed;
    match (report.failed, total) {
        (0, 0) => Err(Failure::Failed(format!(
            "no cases ran: {} names no case file with cases{}",
            shown(&project.manifest_path).display(),
            match args.filter {
                Some(f) => format!(" matching {f:?}"),
                None => String::new(),
            }
        ))),
        (0, _) => Ok(()),
        (failed, _) => Err(Failure::Failed(format!("{failed} of {total} cases failed"))),
    }
}

impl Runner {
    fn new(project: &Project, bundle: Bundle, code: &[u8], explain: bool) -> Result<Self, Failure> {
        let defaults = Limits::default();
        let own = &project.manifest.limits;
        defaults.check(own).map_err(|e| {
            Failure::Setup(format!(
                "{}: {e} (the server's default)",
                shown(&project.manifest_path).display()
            ))
        })?;
        let limits = defaults.for_tenant(own);
        let engines = Engines::new(defaults)
            .map_err(|e| Failure::Setup(format!("the policy engines could not start: {e}")))?;
        let engine = project.manifest.engine;
        engines
            .check_size(code)
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let program = engines
            .compile(engine, code)
            .map_err(|e| compile_failure(project, engine, &e))?;
        let policy = Arc::new(LoadedPolicy {
            name: project.point.clone(),
            version: 0,
            bundle: Arc::new(bundle),
            program,
            breaker: Breaker::default(),
        });
        Ok(Self {
            engines,
            policy,
            tenant_name: project.point.clone(),
            groups: SavedGroups::default(),
            stages: project
                .manifest
                .stages
                .clone()
                .unwrap_or_else(default_stages),
            limits,
            explain,
        })
    }

    /// Runs one case (and with `bench`, times it).
    fn case(&self, case: &Case, bench: bool) -> CaseReport {
        let mut report = CaseReport {
            file: String::new(),
            name: case.name.clone(),
            passed: false,
            problems: Vec::new(),
            actions: Vec::new(),
            fallback: false,
            failure: None,
            explain: None,
            bench: None,
        };
        let (request, limit) = match self.request(case, self.explain) {
            Ok(checked) => checked,
            Err(problem) => {
                report.problems.push(problem);
                return report;
            }
        };
        let now_ms = case.now_ms.unwrap_or(DEFAULT_NOW_MS);
        let profile = case.profile(now_ms).map(Arc::new);
        let subject = Subject {
            tenant: &self.tenant_name,
            groups: &self.groups,
            profile: profile.as_ref(),
            history_unavailable: None,
            now_ms,
            limits: &self.limits,
        };
        // As a try: a case that makes the policy fail must not pause it for
        // the cases after it.
        let decision = pipeline::trial(&self.engines, &subject, &self.policy, &request, limit);
        let failed = decision
            .failed
            .as_ref()
            .map(|e| (e.reason(), e.to_string()));
        report.problems = cases::compare(
            &case.expect,
            &Got {
                response: &decision.response,
                failed: failed.clone(),
            },
        );
        report.passed = report.problems.is_empty();
        report.actions = decision
            .response
            .actions
            .iter()
            .map(|a| cases::Expected {
                id: a.id.clone(),
                score: a.score,
            })
            .collect();
        report.fallback = decision.response.fallback;
        report.failure = failed.map(|(reason, message)| FailureReport { reason, message });
        report.explain = decision.response.explain.as_ref().map(|explain| {
            // In catalog order, as the author wrote it.
            self.policy
                .bundle
                .actions()
                .iter()
                .filter_map(|a| Some((a.id.clone(), explain.get(&a.id)?.clone())))
                .collect()
        });
        // Timed as the server decides: without explain.
        if bench && let Ok((request, _)) = self.request(case, false) {
            let decide = || pipeline::trial(&self.engines, &subject, &self.policy, &request, limit);
            report.bench = Some(self.bench(&decision, decide));
        }
        report
    }

    /// The case's request, checked as the server checks a decide request,
    /// explained or not; and its limit.
    fn request(&self, case: &Case, explain: bool) -> Result<(DecideRequest, usize), String> {
        let mut body = case.request.clone();
        body.insert(
            "point".to_owned(),
            Value::String(self.policy.name.to_string()),
        );
        body.insert("explain".to_owned(), Value::Bool(explain));
        let request: DecideRequest = serde_json::from_value(Value::Object(body))
            .map_err(|e| format!("the case's request is not a decide request: {e}"))?;
        let limit = request
            .check()
            .map_err(|e| format!("the case's request is invalid: {e}"))?;
        if let Some(stage) = &request.stage
            && !self.stages.contains(stage)
        {
            return Err(format!(
                "stage {stage:?} is not one of the tenant's stages {:?} (moment.toml's `stages`)",
                self.stages
            ));
        }
        Ok((request, limit))
    }

    /// Times a case's decision: repeated for about a fifth of a second (at
    /// least 10 times, at most 10,000), medians reported.
    fn bench(&self, first: &Decision, decide: impl Fn() -> Decision) -> Bench {
        let mut whole = Vec::new();
        let mut calls = Vec::new();
        let started = Instant::now();
        while whole.len() < 10
            || (whole.len() < 10_000 && started.elapsed() < Duration::from_millis(200))
        {
            let at = Instant::now();
            let decision = decide();
            whole.push(at.elapsed());
            if let Some(spent) = decision.spent {
                calls.push(spent.elapsed);
            }
        }
        let (operations_limit, unit) = match self.policy.program.engine() {
            EngineKind::Rhai => (self.limits.rhai_max_operations, "operations"),
            EngineKind::Wasm => (self.limits.wasm_fuel, "fuel"),
        };
        Bench {
            iterations: whole.len(),
            decision_median_ns: median_ns(&mut whole),
            policy_median_ns: median_ns(&mut calls),
            operations: first.spent.map_or(0, |s| s.operations),
            operations_limit,
            unit,
            deadline_ns: self.limits.deadline.as_nanos() as u64,
        }
    }
}

fn median_ns(samples: &mut [Duration]) -> u64 {
    samples.sort_unstable();
    samples
        .get(samples.len() / 2)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A compile error, pointed at the source file when it has a position.
fn compile_failure(project: &Project, engine: EngineKind, error: &CompileError) -> Failure {
    if let (
        CompileError::Syntax {
            line,
            column,
            message,
        },
        Some(path),
    ) = (error, project.source_path())
        && let Ok(text) = read_text(&path)
    {
        let at = pointed(&path, &text, *line, *column, message);
        return Failure::Failed(format!("the Rhai source does not compile: {at}"));
    }
    Failure::Failed(compile_detail(engine, error))
}

fn print_report(report: &Report, runner: &Runner) {
    println!(
        "policy {} ({}) in {}: {} actions",
        report.point,
        report.engine.as_str(),
        report.directory,
        runner.policy.bundle.actions().len()
    );
    for case in &report.cases {
        match case.passed {
            true => println!("  ok    {}", case.name),
            false => println!("  FAIL  {}  [{}]", case.name, case.file),
        }
        for line in &case.problems {
            println!("          {line}");
        }
        if !case.passed && case.problems.iter().all(|p| !p.starts_with("got ")) {
            let got: Vec<&str> = case.actions.iter().map(|a| a.id.as_str()).collect();
            println!("          got: {}", got.join(", "));
        }
        if let Some(explain) = &case.explain {
            print_explain(explain);
        }
        if let Some(bench) = &case.bench {
            print_bench(bench);
        }
    }
    println!(
        "{} cases: {} passed, {} failed",
        report.passed + report.failed,
        report.passed,
        report.failed
    );
}

/// One line per catalog action: what happened to it.
pub fn print_explain(explain: &[(String, Explained)]) {
    let width = explain.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
    for (id, why) in explain {
        println!("          {id:<width$}  {}", explained(why));
    }
}

/// What happened to an action, in words.
pub fn explained(why: &Explained) -> String {
    let score = |s: &Option<f64>| s.map_or("fallback".to_owned(), |s| format!("score {s:.6}"));
    match why {
        Explained::Returned { rank, score: s } => format!("returned #{rank} ({})", score(s)),
        Explained::CutByLimit { score: s } => format!("cut by the limit (score {s:.6})"),
        Explained::CutByKindCap { score: s } => {
            format!("cut by max_per_kind (score {s:.6})")
        }
        Explained::Ineligible { condition } => format!("ineligible: {condition}"),
        Explained::ContactRule { rule } => format!("hidden by contact rule: {rule}"),
        Explained::NotScored => "not scored by the policy".to_owned(),
        Explained::PolicyFailed { reason } => format!("policy failed ({reason})"),
    }
}

fn print_bench(bench: &Bench) {
    let micros = |ns: u64| ns as f64 / 1000.0;
    let share = match bench.operations_limit {
        0 => 0.0,
        limit => 100.0 * bench.operations as f64 / limit as f64,
    };
    println!(
        "          {:.1} µs a decision, {:.1} µs in the policy (median of {}); \
         {} {} of {} ({share:.3}%); deadline {:.0} µs",
        micros(bench.decision_median_ns),
        micros(bench.policy_median_ns),
        bench.iterations,
        bench.operations,
        bench.unit,
        bench.operations_limit,
        micros(bench.deadline_ns),
    );
}
