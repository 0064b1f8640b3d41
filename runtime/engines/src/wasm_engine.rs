//! WebAssembly policies on ABI v1 (see `ARCHITECTURE.md`): a core module with
//! no imports exporting `memory`, `moment_alloc(len) -> ptr` and
//! `moment_decide(ptr, len) -> (out_ptr << 32 | out_len)`, JSON in and out.
//!
//! The wasmtime [`Engine`] is built once with the pooling allocator, fuel and
//! epoch interruption; each distinct module (by content hash) is compiled once
//! into an [`InstancePre`]. Every decision gets a fresh [`Store`] and instance,
//! so no state leaks between customers, and runs under fuel, an epoch
//! deadline, a linear-memory cap, a stack cap and input/output size caps.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lru::LruCache;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use wasmtime::{
    Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, ResourceLimiter, Store, Trap, ValType,
};

use moment_core::call::{History, Limits, PolicyError, PolicyInput, Scored};

use crate::CompileError;

/// How often the epoch ticks; deadlines are counted in ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The pool's per-slot memory ceiling: the largest cap an operator may set.
/// The configured cap is enforced by the limiter at run time and by the ABI
/// check at upload, which can then say why a module is refused.
const POOL_MAX_MEMORY: usize = 1 << 30;
/// Bytes at the start of each pool slot's memory that are reset with
/// `memset` and stay mapped between decisions; above this, memory is given
/// back to the kernel and faulted in again when a later decision touches it.
/// A guest's stack and first heap pages live here, so they are not faulted
/// in again on every decision. At most 256 slots × this (64 MiB) stay
/// resident.
const KEEP_RESIDENT: usize = 256 * 1024;
/// Most instances alive at once (one per in-flight WASM decision).
const POOL_INSTANCES: u32 = 256;
/// Largest native stack a policy may use.
const MAX_WASM_STACK: usize = 512 * 1024;
/// Largest table a policy may grow to, in elements.
const MAX_TABLE_ELEMENTS: usize = 10_000;
/// Numbers the temporary files compiled modules are written to.
static PARTIAL_FILES: AtomicU64 = AtomicU64::new(0);
/// Distinct compiled modules kept.
const MODULE_CACHE: NonZeroUsize = NonZeroUsize::new(1024).expect("non-zero");

/// A compiled, pre-linked module.
#[derive(Clone)]
pub struct WasmModule {
    pre: InstancePre<Host>,
}

impl WasmModule {
    /// Whether two handles share one compilation (the content-hash cache hit).
    #[cfg(test)]
    pub(crate) fn same_compilation(&self, other: &WasmModule) -> bool {
        Module::same(self.pre.module(), other.pre.module())
    }
}

/// Per-decision host state: the memory limiter.
struct Host {
    memory_cap: usize,
    refused_growth: bool,
}

impl ResourceLimiter for Host {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_cap;
        self.refused_growth |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }
}

/// The input document as a WASM policy receives it: [`PolicyInput`] with
/// each candidate's JSON copied from the bundle instead of re-encoded.
#[derive(Serialize)]
struct Document<'a> {
    customer_id: &'a str,
    stage: Option<&'a str>,
    channel: Option<&'a str>,
    attributes: &'a Map<String, Value>,
    context: &'a Map<String, Value>,
    candidates: Vec<&'a RawValue>,
    history: History<'a>,
    now_ms: u64,
}

/// Encodes `input` as ABI v1's input JSON.
pub fn encode_input(input: &PolicyInput<'_>) -> Result<Vec<u8>, PolicyError> {
    let document = Document {
        customer_id: input.customer_id,
        stage: input.stage,
        channel: input.channel,
        attributes: input.attributes,
        context: input.context,
        candidates: input.candidates.iter().map(|c| c.json()).collect(),
        history: input.history,
        now_ms: input.now_ms,
    };
    // Sized once up front: the candidates' JSON plus a guess for the rest.
    let guess = document
        .candidates
        .iter()
        .map(|c| c.get().len() + 1)
        .sum::<usize>()
        + 64 * input.candidates.len()
        + 4096;
    let mut bytes = Vec::with_capacity(guess);
    serde_json::to_writer(&mut bytes, &document)
        .map_err(|e| PolicyError::Encoding(e.to_string()))?;
    Ok(bytes)
}

/// Output document of `moment_decide`.
#[derive(Deserialize)]
struct Output {
    actions: Vec<OutputAction>,
}

#[derive(Deserialize)]
struct OutputAction {
    id: String,
    score: f64,
}

/// The shared wasmtime engine and module cache.
pub struct WasmEngine {
    engine: Engine,
    linker: Linker<Host>,
    modules: Mutex<LruCache<[u8; 32], WasmModule>>,
    memory_cap: usize,
    /// Where compiled modules are kept between runs, if anywhere.
    compiled_dir: Option<PathBuf>,
}

impl WasmEngine {
    /// Builds the engine and starts its epoch ticker thread (which stops when
    /// the engine is dropped). With `compiled_dir`, compiled modules are
    /// written there and mapped back from there (see [`WasmEngine::compile`]).
    pub fn new(limits: &Limits, compiled_dir: Option<PathBuf>) -> Result<Self, wasmtime::Error> {
        if let Some(dir) = &compiled_dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(POOL_INSTANCES)
            .total_memories(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES)
            .max_memory_size(POOL_MAX_MEMORY)
            .linear_memory_keep_resident(KEEP_RESIDENT);
        let mut config = Config::new();
        config
            .consume_fuel(true)
            // Data segments are copied into a slot at instantiation rather
            // than mapped copy-on-write: a slot then serves any tenant's
            // module without remapping, which with many tenants round-robin
            // cost more than the copy.
            .memory_init_cow(false)
            // No wasm-offset maps for backtraces: policies fail by reason,
            // not by stack trace, and each module is smaller in memory.
            .generate_address_map(false)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("moment-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(wasmtime::Error::from)?;
        let linker = Linker::new(&engine);
        Ok(Self {
            engine,
            linker,
            modules: Mutex::new(LruCache::new(MODULE_CACHE)),
            memory_cap: limits.wasm_memory_bytes,
            compiled_dir,
        })
    }

    /// Validates and compiles a module, or returns the cached compilation of
    /// identical bytes.
    pub fn compile(&self, bytes: &[u8]) -> Result<WasmModule, CompileError> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(module) = self
            .modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
        {
            return Ok(module.clone());
        }
        if !bytes.starts_with(b"\0asm") {
            return Err(CompileError::NotWasm(
                "it does not start with the `\\0asm` magic bytes".into(),
            ));
        }
        let module = match self.compiled_path(&hash) {
            Some(path) => self.compile_through_file(bytes, &path)?,
            None => Module::new(&self.engine, bytes)
                .map_err(|e| CompileError::NotWasm(format!("{e:#}")))?,
        };
        check_abi(&module, self.memory_cap)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| CompileError::Abi(format!("cannot link the module: {e:#}")))?;
        let compiled = WasmModule { pre };
        self.modules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(hash, compiled.clone());
        Ok(compiled)
    }

    /// `<compiled_dir>/<sha256 of the module>.cwasm`, when there is a directory.
    fn compiled_path(&self, hash: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.compiled_dir.as_ref()?;
        Some(dir.join(format!("{}.cwasm", hex::encode(hash))))
    }

    /// The module compiled at `path` by an earlier run, or compiled now and
    /// written there first, then mapped from the file: a restart maps
    /// modules instead of compiling them again (about 0.13 s each for the
    /// reference policy). A file that cannot be written or read back only
    /// costs that: the module is compiled in memory instead.
    fn compile_through_file(&self, bytes: &[u8], path: &Path) -> Result<Module, CompileError> {
        if let Some(module) = self.map_compiled(path) {
            return Ok(module);
        }
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| CompileError::NotWasm(format!("{e:#}")))?;
        let written = module
            .serialize()
            .map_err(std::io::Error::other)
            .and_then(|image| {
                // Written whole under a temporary name, then renamed: a reader
                // never sees a partial file, and a mapped file is never rewritten.
                let unique = PARTIAL_FILES.fetch_add(1, Ordering::Relaxed);
                let partial =
                    path.with_extension(format!("{}-{unique}.partial", std::process::id()));
                std::fs::write(&partial, image)?;
                std::fs::rename(&partial, path)
            });
        match written {
            Ok(()) => Ok(self.map_compiled(path).unwrap_or(module)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep a compiled module on disk");
                Ok(module)
            }
        }
    }

    /// Maps a module this engine compiled into `path` earlier, if it is
    /// there and this build and configuration of wasmtime can use it.
    #[allow(unsafe_code)]
    fn map_compiled(&self, path: &Path) -> Option<Module> {
        if !path.is_file() {
            return None;
        }
        // SAFETY: wasmtime requires the file to hold the output of
        // `Module::serialize` and not to change while mapped. Files under
        // `compiled_dir` are only written by `compile_through_file` above,
        // from `Module::serialize`, under a temporary name renamed into place,
        // and never rewritten in place; wasmtime checks the file's header
        // against this engine's version and settings and refuses a mismatch
        // (we then compile again and replace the file). Someone who can write
        // to the data directory could also rewrite the store itself.
        match unsafe { Module::deserialize_file(&self.engine, path) } {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "recompiling a module whose compiled file cannot be used");
                None
            }
        }
    }

    /// Runs one decision in a fresh instance, setting `fuel` to the fuel
    /// it burnt.
    pub fn run(
        &self,
        module: &WasmModule,
        input: &PolicyInput<'_>,
        limits: &Limits,
        fuel: &mut u64,
    ) -> Result<Vec<Scored>, PolicyError> {
        let input = encode_input(input)?;
        if input.len() > limits.max_input_bytes {
            return Err(PolicyError::InputTooLarge(input.len()));
        }
        let mut store = Store::new(
            &self.engine,
            Host {
                memory_cap: limits.wasm_memory_bytes,
                refused_growth: false,
            },
        );
        store.limiter(|host| host);
        store
            .set_fuel(limits.wasm_fuel)
            .map_err(|e| PolicyError::Trap(e.to_string()))?;
        let ticks = limits.deadline.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let result = call(&mut store, module, &input, limits);
        *fuel = limits
            .wasm_fuel
            .saturating_sub(store.get_fuel().unwrap_or(limits.wasm_fuel));
        result.map_err(|failure| match failure {
            Failure::Policy(e) => e,
            Failure::Wasm(e) => classify(&e, store.data().refused_growth),
        })
    }
}

enum Failure {
    Policy(PolicyError),
    Wasm(wasmtime::Error),
}

impl From<wasmtime::Error> for Failure {
    fn from(e: wasmtime::Error) -> Self {
        Failure::Wasm(e)
    }
}

fn call(
    store: &mut Store<Host>,
    module: &WasmModule,
    input: &[u8],
    limits: &Limits,
) -> Result<Vec<Scored>, Failure> {
    let instance = module.pre.instantiate(&mut *store)?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| Failure::Policy(PolicyError::BadOutput("no memory export".into())))?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "moment_alloc")?;
    let decide = instance.get_typed_func::<(i32, i32), i64>(&mut *store, "moment_decide")?;

    let len = i32::try_from(input.len())
        .map_err(|_| Failure::Policy(PolicyError::InputTooLarge(input.len())))?;
    let ptr = alloc.call(&mut *store, len)?;
    memory
        .write(&mut *store, ptr as u32 as usize, input)
        .map_err(|_| {
            Failure::Policy(PolicyError::BadOutput(
                "moment_alloc returned memory outside the module's memory".into(),
            ))
        })?;
    let packed = decide.call(&mut *store, (ptr, len))? as u64;

    let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if out_len > limits.max_output_bytes {
        return Err(Failure::Policy(PolicyError::OutputTooLarge));
    }
    let bytes = out_ptr
        .checked_add(out_len)
        .and_then(|end| memory.data(&*store).get(out_ptr..end))
        .ok_or_else(|| {
            Failure::Policy(PolicyError::BadOutput(
                "output points outside the module's memory".into(),
            ))
        })?;
    decode_output(bytes).map_err(Failure::Policy)
}

/// Parses `{"actions":[{"id","score"}]}`.
pub fn decode_output(bytes: &[u8]) -> Result<Vec<Scored>, PolicyError> {
    let out: Output = serde_json::from_slice(bytes)
        .map_err(|e| PolicyError::BadOutput(format!("output is not a ranking: {e}")))?;
    Ok(out
        .actions
        .into_iter()
        .map(|a| Scored {
            id: a.id,
            score: a.score,
        })
        .collect())
}

fn classify(err: &wasmtime::Error, refused_growth: bool) -> PolicyError {
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PolicyError::Fuel,
        Some(Trap::Interrupt) => PolicyError::Deadline,
        Some(Trap::StackOverflow) => PolicyError::StackOverflow,
        Some(trap) if refused_growth => {
            tracing::debug!(%trap, "trap after refused memory growth");
            PolicyError::Memory
        }
        Some(trap) => PolicyError::Trap(trap.to_string()),
        None if refused_growth => PolicyError::Memory,
        None => PolicyError::Trap(format!("{err:#}")),
    }
}

/// Checks imports and exports against ABI v1.
fn check_abi(module: &Module, memory_cap: usize) -> Result<(), CompileError> {
    if let Some(import) = module.imports().next() {
        return Err(CompileError::Abi(format!(
            "it imports `{}.{}`; ABI v1 modules may not import anything (no WASI, no `env`)",
            import.module(),
            import.name()
        )));
    }
    let export = |name: &str| module.get_export(name);
    match export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() => {
            let minimum = m.minimum().saturating_mul(64 * 1024);
            if minimum > memory_cap as u64 {
                return Err(CompileError::Abi(format!(
                    "its memory starts at {minimum} bytes, over the {memory_cap}-byte cap"
                )));
            }
        }
        _ => {
            return Err(CompileError::Abi(
                "it must export a 32-bit linear memory named `memory`".into(),
            ));
        }
    }
    let func = |name: &str, params: &[ValType], results: &[ValType], sig: &str| match export(name) {
        Some(ExternType::Func(f)) if same(f.params(), params) && same(f.results(), results) => {
            Ok(())
        }
        _ => Err(CompileError::Abi(format!(
            "it must export the function `{name}: {sig}`"
        ))),
    };
    func(
        "moment_alloc",
        &[ValType::I32],
        &[ValType::I32],
        "(i32) -> i32",
    )?;
    func(
        "moment_decide",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
        "(i32, i32) -> i64",
    )?;
    Ok(())
}

fn same(actual: impl ExactSizeIterator<Item = ValType>, expected: &[ValType]) -> bool {
    actual.len() == expected.len() && actual.zip(expected).all(|(a, e)| ValType::eq(&a, e))
}
