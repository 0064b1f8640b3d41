//! Policy engines: compile tenant code once, run it per decision under
//! limits. Rhai and wasmtime live here and nowhere else; so does the
//! workspace's `unsafe` code: mapping a compiled module from a file
//! (`wasm_engine.rs`) and the process's allocator, which counts each
//! thread's live heap so a Rhai call can be held to a memory budget
//! ([`memory`]).
//!
//! **Tenant code never runs without a budget** ([`moment_core::call`]):
//! every call has a wall-clock deadline and an operation (or fuel) budget,
//! plus size caps on what goes in and comes out. Every way a policy can fail
//! is a [`PolicyError`] variant.

pub mod memory;
pub mod rhai_engine;
pub mod wasm_engine;

#[cfg(test)]
mod corpus_tests;

/// The engines' own tests run with the heap counted, as the server does.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: memory::Accounting<std::alloc::System> = memory::Accounting(std::alloc::System);

use std::path::PathBuf;
use std::time::Instant;

use moment_core::call::{Limits, PolicyError, PolicyInput, Scored, Spent};
use moment_core::model::policy::EngineKind;

/// Why uploaded code was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CompileError {
    /// The code is larger than [`Limits::max_code_bytes`].
    #[error("the code is {size} bytes; at most {limit} are allowed (--max-code-bytes)")]
    TooLarge {
        /// Size of the upload.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// A Rhai source that is not UTF-8.
    #[error("source is not valid UTF-8")]
    NotUtf8,
    /// A Rhai syntax error.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        message: String,
    },
    /// The script defines no `fn decide(ctx)`.
    #[error("the script must define `fn decide(ctx)` taking one parameter")]
    MissingDecide,
    /// The bytes are not a valid WebAssembly module.
    #[error("not a valid WebAssembly module: {0}")]
    NotWasm(String),
    /// The module does not follow ABI v1.
    #[error("the module does not follow ABI v1: {0}")]
    Abi(String),
}

/// Why the engines could not be set up (wasmtime's configuration or its
/// pooling allocator refused).
pub type SetupError = wasmtime::Error;

/// Compiled policy code, ready to run.
pub enum Program {
    /// A compiled Rhai script.
    Rhai(rhai_engine::Script),
    /// A compiled, pre-linked WebAssembly module.
    Wasm(wasm_engine::WasmModule),
    /// Stored code that no longer compiles: every call fails with
    /// [`PolicyError::Unloadable`], so the version serves its fallback.
    Unloadable(EngineKind),
}

impl Program {
    /// Which engine runs this program.
    pub fn engine(&self) -> EngineKind {
        match self {
            Program::Rhai(_) => EngineKind::Rhai,
            Program::Wasm(_) => EngineKind::Wasm,
            Program::Unloadable(kind) => *kind,
        }
    }
}

/// The engines, built once at start and shared by every decision.
pub struct Engines {
    rhai: rhai_engine::RhaiEngine,
    wasm: wasm_engine::WasmEngine,
    limits: Limits,
}

impl Engines {
    /// Builds every engine with `limits`; WASM modules are compiled in memory.
    pub fn new(limits: Limits) -> Result<Self, SetupError> {
        Self::build(limits, None)
    }

    /// Builds every engine with `limits`, keeping compiled WASM modules as
    /// files in `dir` (created if missing) and mapping them from there, so
    /// each is compiled once, not again at every restart.
    pub fn with_compiled_dir(limits: Limits, dir: PathBuf) -> Result<Self, SetupError> {
        Self::build(limits, Some(dir))
    }

    fn build(limits: Limits, compiled_dir: Option<PathBuf>) -> Result<Self, SetupError> {
        if !memory::installed() {
            tracing::warn!(
                "the allocator does not count heaps (moment_engines::memory::Accounting): \
                 Rhai calls are held to Rhai's size caps only, not to a heap budget"
            );
        }
        Ok(Self {
            rhai: rhai_engine::RhaiEngine::new(&limits),
            wasm: wasm_engine::WasmEngine::new(&limits, compiled_dir)?,
            limits,
        })
    }

    /// The limits the engines enforce.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Refuses code over [`Limits::max_code_bytes`]; checked at upload only,
    /// so lowering the cap never stops stored versions from loading.
    pub fn check_size(&self, code: &[u8]) -> Result<(), CompileError> {
        if code.len() > self.limits.max_code_bytes {
            return Err(CompileError::TooLarge {
                size: code.len(),
                limit: self.limits.max_code_bytes,
            });
        }
        Ok(())
    }

    /// Compiles code for `engine`.
    pub fn compile(&self, engine: EngineKind, code: &[u8]) -> Result<Program, CompileError> {
        match engine {
            EngineKind::Rhai => {
                let source = std::str::from_utf8(code).map_err(|_| CompileError::NotUtf8)?;
                self.rhai.compile(source).map(Program::Rhai)
            }
            EngineKind::Wasm => self.wasm.compile(code).map(Program::Wasm),
        }
    }

    /// Runs `program` on `input` within `limits` (the operator's, or a
    /// tenant's from [`Limits::for_tenant`]). A panic inside an engine (a bug
    /// there, never a policy's doing) is contained as a trap.
    pub fn run(
        &self,
        program: &Program,
        input: &PolicyInput<'_>,
        limits: &Limits,
    ) -> Result<Vec<Scored>, PolicyError> {
        self.run_spent(program, input, limits).0
    }

    /// [`run`](Self::run), also saying what the call used of its budget
    /// (operations or fuel counted up to the point it stopped).
    pub fn run_spent(
        &self,
        program: &Program,
        input: &PolicyInput<'_>,
        limits: &Limits,
    ) -> (Result<Vec<Scored>, PolicyError>, Spent) {
        let started = Instant::now();
        let mut operations = 0;
        let call = || match program {
            Program::Rhai(script) => self.rhai.run(script, input, limits, &mut operations),
            Program::Wasm(module) => self.wasm.run(module, input, limits, &mut operations),
            Program::Unloadable(_) => Err(PolicyError::Unloadable),
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
            .unwrap_or_else(|_| Err(PolicyError::Trap("the engine panicked".to_owned())));
        let spent = Spent {
            operations,
            elapsed: started.elapsed(),
        };
        (result, spent)
    }
}
