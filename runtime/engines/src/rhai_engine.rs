//! Rhai policies: a script defining `fn decide(ctx)` that returns an array of
//! `#{id, score}` maps.
//!
//! The engine is built once with every limit set (Rhai limits nothing unless
//! told), no module resolver (no `import` from disk), no `eval`, no `curry`
//! and no closures (Rhai is built with `no_closure`: data a function pointer
//! carries is invisible to its size checks), and printing discarded. Scripts
//! compile once per version.
//!
//! **Memory**: between any two operations the call's live heap is read
//! ([`crate::memory`]) and the call ends with [`PolicyError::Memory`] past
//! [`Limits::rhai_max_memory_bytes`]. Within one operation, Rhai's size
//! checks (which count map entries, not their keys) bound what a script
//! adds, but for `pad`, which clones an item thousands of times: a map with
//! a long key, padded, is gigabytes counted as a few thousand entries. The
//! engine's own `pad` ([`pad`]) measures what its copies would hold, keys
//! included, and refuses them past the call's remaining heap. Every other
//! operation at most doubles what the call already holds.

use std::cell::Cell;
use std::time::Instant;

use rhai::module_resolvers::DummyModuleResolver;
use rhai::{
    AST, Array, CallFnOptions, Dynamic, Engine, EvalAltResult, INT, ImmutableString,
    NativeCallContext, Scope,
};

use moment_core::call::{Limits, PolicyError, PolicyInput, Scored};

use crate::{CompileError, memory};

/// How many Rhai operations pass between two looks at the clock.
const CLOCK_EVERY_OPS: u64 = 256;

/// The budget of the Rhai call running on a thread.
#[derive(Clone, Copy)]
struct Budget {
    deadline: Instant,
    max_operations: u64,
    /// The thread's live heap when the call started ([`memory::live_bytes`]).
    heap_base: isize,
    max_heap: isize,
}

/// Why the progress hook stopped a call.
#[derive(Clone, Copy, PartialEq)]
enum Stopped {
    Deadline,
    Operations,
    Memory,
}

/// The Rhai call running on a thread: its budget, and what the progress
/// hook saw. One thread-local, so the hook reads it once per operation.
struct Running {
    /// Budget of the call, if one is running.
    budget: Cell<Option<Budget>>,
    /// Set by the progress hook when it stops the call.
    stopped: Cell<Option<Stopped>>,
    /// Operations the call has performed so far.
    operations: Cell<u64>,
}

thread_local! {
    static RUNNING: Running = const {
        Running {
            budget: Cell::new(None),
            stopped: Cell::new(None),
            operations: Cell::new(0),
        }
    };
}

/// A compiled script.
pub struct Script {
    ast: AST,
}

/// The shared, fully limited Rhai engine.
pub struct RhaiEngine {
    engine: Engine,
}

impl RhaiEngine {
    /// Builds the engine with `limits`.
    pub fn new(limits: &Limits) -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.rhai_max_operations)
            .set_max_call_levels(32)
            .set_max_expr_depths(64, 32)
            .set_max_string_size(limits.rhai_max_data)
            .set_max_array_size(limits.rhai_max_data)
            .set_max_map_size(limits.rhai_max_data)
            .set_max_variables(1024)
            .set_max_functions(256)
            .set_max_modules(0)
            .set_module_resolver(DummyModuleResolver::new())
            .disable_symbol("eval")
            .disable_symbol("import")
            .disable_symbol("curry")
            .on_print(|_| {})
            .on_debug(|_, _, _| {})
            .on_progress(|ops| {
                // The per-call budget (a tenant's may be tighter than the
                // engine-wide ceiling): the heap after every operation, the
                // operations and the clock every 256.
                let budget = RUNNING.with(|running| {
                    running.operations.set(ops);
                    running.budget.get()
                })?;
                let stopped = if memory::live_bytes() - budget.heap_base > budget.max_heap {
                    Stopped::Memory
                } else if ops % CLOCK_EVERY_OPS != 0 {
                    return None;
                } else if ops > budget.max_operations {
                    Stopped::Operations
                } else if Instant::now() >= budget.deadline {
                    Stopped::Deadline
                } else {
                    return None;
                };
                RUNNING.with(|running| running.stopped.set(Some(stopped)));
                Some(Dynamic::UNIT)
            });
        engine.register_fn("priority", priority);
        engine.register_fn("pad", pad);
        Self { engine }
    }

    /// Compiles `source`, checking that it defines `decide(ctx)`.
    pub fn compile(&self, source: &str) -> Result<Script, CompileError> {
        let ast = self.engine.compile(source).map_err(|e| {
            let pos = e.position();
            let (line, column) = (pos.line().unwrap_or(0), pos.position().unwrap_or(0));
            let message = match switched_off_at(source, line, column) {
                Some(word) => format!("`{word}` is not available to policies"),
                None => e.err_type().to_string(),
            };
            CompileError::Syntax {
                line,
                column,
                message,
            }
        })?;
        let has_decide = ast
            .iter_functions()
            .any(|f| f.name == "decide" && f.params.len() == 1);
        if !has_decide {
            return Err(CompileError::MissingDecide);
        }
        Ok(Script { ast })
    }

    /// Runs `script` on `input` under the deadline and budgets, setting
    /// `operations` to the operations it performed.
    pub fn run(
        &self,
        script: &Script,
        input: &PolicyInput<'_>,
        limits: &Limits,
        operations: &mut u64,
    ) -> Result<Vec<Scored>, PolicyError> {
        let ctx = rhai::serde::to_dynamic(input)
            .map_err(|e| PolicyError::BadOutput(format!("input: {e}")))?;
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(false);
        let mut scope = Scope::new();
        let budget = Budget {
            deadline: Instant::now() + limits.deadline,
            max_operations: limits.rhai_max_operations,
            heap_base: memory::live_bytes(),
            max_heap: isize::try_from(limits.rhai_max_memory_bytes).unwrap_or(isize::MAX),
        };
        RUNNING.with(|running| {
            running.budget.set(Some(budget));
            running.stopped.set(None);
            running.operations.set(0);
        });
        let result = self.engine.call_fn_with_options::<Dynamic>(
            options,
            &mut scope,
            &script.ast,
            "decide",
            (ctx,),
        );
        let stopped = RUNNING.with(|running| {
            running.budget.set(None);
            *operations = running.operations.take();
            running.stopped.take()
        });
        result
            .map_err(|e| classify(&e, stopped))
            .and_then(decode_output)
    }
}

/// `array.pad(len, item)`, in place of Rhai's own: grows `array` to `len`
/// with copies of `item`, refused (as out of memory) when the copies, map
/// keys included, would not fit the call's remaining heap, or the array
/// would pass the engine's size cap. Nothing is copied then.
fn pad(
    ctx: NativeCallContext,
    array: &mut Array,
    len: INT,
    item: Dynamic,
) -> Result<(), Box<EvalAltResult>> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(());
    };
    if len <= array.len() {
        return Ok(());
    }
    let too_large = |what: &str| {
        Box::new(EvalAltResult::ErrorDataTooLarge(
            what.to_owned(),
            ctx.call_position(),
        ))
    };
    let cap = ctx.engine().max_array_size();
    if cap > 0 && len > cap {
        return Err(too_large("Size of array"));
    }
    if let Some(budget) = RUNNING.with(|running| running.budget.get()) {
        let free = budget.max_heap - (memory::live_bytes() - budget.heap_base);
        let copies = (len - array.len()).saturating_mul(heap_bytes(&item));
        if isize::try_from(copies).map_or(true, |c| c > free) {
            return Err(too_large("Memory of padded array"));
        }
    }
    array.resize(len, item);
    Ok(())
}

/// About what a copy of `value` holds on the heap: its slot, string bytes,
/// map keys and entries, nested values.
fn heap_bytes(value: &Dynamic) -> usize {
    let slot = std::mem::size_of::<Dynamic>();
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return slot + s.len();
    }
    if let Some(items) = value.read_lock::<Array>() {
        return slot + items.iter().map(heap_bytes).sum::<usize>();
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return slot
            + map
                .iter()
                .map(|(k, v)| k.len() + 2 * slot + heap_bytes(v))
                .sum::<usize>();
    }
    if let Some(blob) = value.read_lock::<rhai::Blob>() {
        return slot + blob.len();
    }
    slot
}

/// Words the engine switches off, and so the parser chokes on.
const SWITCHED_OFF: [&str; 3] = ["curry", "eval", "import"];

/// The switched-off word at (or right after) a parse error's 1-based
/// position, if any: the parser reports `x.curry(…)` as a bad property.
fn switched_off_at(source: &str, line: usize, column: usize) -> Option<&'static str> {
    let text = source.lines().nth(line.checked_sub(1)?)?;
    let from = text.get(column.saturating_sub(1)..)?;
    let word: String = from
        .chars()
        .skip_while(|c| !c.is_alphanumeric())
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    SWITCHED_OFF.into_iter().find(|w| *w == word)
}

/// `priority(propensity, value, weight)`: the Pega arbitration formula
/// `propensity × value × weight`, for integers and floats alike.
fn priority(
    propensity: Dynamic,
    value: Dynamic,
    weight: Dynamic,
) -> Result<rhai::FLOAT, Box<EvalAltResult>> {
    let number = |d: Dynamic| {
        d.as_float()
            .or_else(|_| d.as_int().map(|n| n as rhai::FLOAT))
            .map_err(|t| format!("priority() takes numbers, not {t}"))
    };
    Ok(number(propensity)? * number(value)? * number(weight)?)
}

/// Maps a Rhai error to the typed failure, looking through function-call wrappers.
fn classify(err: &EvalAltResult, stopped: Option<Stopped>) -> PolicyError {
    match err.unwrap_inner() {
        EvalAltResult::ErrorTerminated(..) if stopped == Some(Stopped::Operations) => {
            PolicyError::Fuel
        }
        EvalAltResult::ErrorTerminated(..) if stopped == Some(Stopped::Memory) => {
            PolicyError::Memory
        }
        EvalAltResult::ErrorTerminated(..) => PolicyError::Deadline,
        EvalAltResult::ErrorTooManyOperations(..) => PolicyError::Fuel,
        EvalAltResult::ErrorStackOverflow(..) => PolicyError::StackOverflow,
        EvalAltResult::ErrorDataTooLarge(..) | EvalAltResult::ErrorTooManyVariables(..) => {
            PolicyError::Memory
        }
        other => PolicyError::Trap(other.to_string()),
    }
}

/// Reads the returned array of `#{id, score}` maps.
fn decode_output(out: Dynamic) -> Result<Vec<Scored>, PolicyError> {
    let items = out
        .into_array()
        .map_err(|t| PolicyError::BadOutput(format!("decide returned {t}, not an array")))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let map = item
                .try_cast::<rhai::Map>()
                .ok_or_else(|| PolicyError::BadOutput(format!("item {i} is not a map")))?;
            let id = map
                .get("id")
                .and_then(|v| v.clone().into_immutable_string().ok())
                .ok_or_else(|| PolicyError::BadOutput(format!("item {i} has no string `id`")))?;
            let score = map
                .get("score")
                .and_then(|v| {
                    v.as_float()
                        .ok()
                        .or_else(|| v.as_int().ok().map(|n| n as f64))
                })
                .ok_or_else(|| {
                    PolicyError::BadOutput(format!("item {i} has no numeric `score`"))
                })?;
            Ok(Scored {
                id: id.to_string(),
                score,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use serde_json::Map;

    use moment_core::call::History;

    use super::*;

    fn run(source: &str, limits: Limits) -> Result<Vec<Scored>, PolicyError> {
        let engine = RhaiEngine::new(&limits);
        let script = engine.compile(source).unwrap();
        let empty = Map::new();
        let input = PolicyInput {
            customer_id: "c-1",
            stage: Some("at-risk"),
            channel: None,
            attributes: &empty,
            context: &empty,
            candidates: vec![],
            history: History::new(None, &[]),
            now_ms: 0,
        };
        engine.run(&script, &input, &limits, &mut 0)
    }

    #[test]
    fn returns_scores_from_ints_and_floats() {
        let out = run(
            r#"fn decide(ctx) { [#{id: ctx.stage, score: 1}, #{id: "b", score: 0.5}] }"#,
            Limits::default(),
        );
        assert_eq!(
            out.unwrap(),
            [
                Scored {
                    id: "at-risk".into(),
                    score: 1.0
                },
                Scored {
                    id: "b".into(),
                    score: 0.5
                }
            ]
        );
    }

    #[test]
    fn priority_multiplies_ints_and_floats() {
        let out = run(
            r#"fn decide(ctx) { [#{id: "a", score: priority(0.5, 20, 2)}] }"#,
            Limits::default(),
        );
        assert_eq!(out.unwrap()[0].score, 20.0);
        let bad = run(
            r#"fn decide(ctx) { [#{id: "a", score: priority("x", 1, 1)}] }"#,
            Limits::default(),
        );
        assert!(matches!(bad, Err(PolicyError::Trap(_))));
    }

    #[test]
    fn compile_errors_have_positions() {
        let engine = RhaiEngine::new(&Limits::default());
        let err = engine
            .compile("fn decide(ctx) {\n  let x = ;\n}")
            .err()
            .unwrap();
        assert!(
            matches!(err, CompileError::Syntax { line: 2, .. }),
            "{err:?}"
        );
        assert_eq!(
            engine.compile("fn other(ctx) { [] }").err(),
            Some(CompileError::MissingDecide)
        );
    }

    #[test]
    fn every_limit_is_typed() {
        let budget = Limits {
            rhai_max_operations: 10_000,
            ..Limits::default()
        };
        assert_eq!(
            run("fn decide(ctx) { loop {} }", budget).err(),
            Some(PolicyError::Fuel)
        );
        let deadline = Limits {
            rhai_max_operations: u64::MAX,
            deadline: Duration::from_millis(5),
            ..Limits::default()
        };
        assert_eq!(
            run("fn decide(ctx) { loop {} }", deadline).err(),
            Some(PolicyError::Deadline)
        );
        let recurse = "fn f(n) { f(n + 1) } fn decide(ctx) { f(0) }";
        assert_eq!(
            run(recurse, Limits::default()).err(),
            Some(PolicyError::StackOverflow)
        );
        let double = r#"fn decide(ctx) { let s = "x"; loop { s += s; } }"#;
        assert_eq!(
            run(double, Limits::default()).err(),
            Some(PolicyError::Memory)
        );
        assert!(matches!(
            run(r#"fn decide(ctx) { throw "no" }"#, Limits::default()),
            Err(PolicyError::Trap(_))
        ));
        assert!(matches!(
            run("fn decide(ctx) { 42 }", Limits::default()),
            Err(PolicyError::BadOutput(_))
        ));
        assert!(matches!(
            run("fn decide(ctx) { [#{id: 1}] }", Limits::default()),
            Err(PolicyError::BadOutput(_))
        ));
    }

    #[test]
    fn curry_and_captures_are_refused() {
        let engine = RhaiEngine::new(&Limits::default());
        let curry = r#"fn decide(ctx) { let f = Fn("decide").curry(1); [] }"#;
        let err = engine.compile(curry).err().unwrap();
        assert!(
            err.to_string().contains("`curry` is not available"),
            "{err}"
        );
        let call = r#"fn decide(ctx) { let f = curry(Fn("decide"), 1); [] }"#;
        assert!(engine.compile(call).is_err());
        let capture =
            r#"fn decide(ctx) { let a = 1; let f = |x| a + x; [#{id: "a", score: f.call(1)}] }"#;
        let outcome = engine
            .compile(capture)
            .map_err(|_| ())
            .and_then(|_| run(capture, Limits::default()).map_err(|_| ()));
        assert!(outcome.is_err(), "a closure saw its surroundings");
    }

    #[test]
    fn long_map_keys_count_against_the_heap_budget() {
        // 700 entries are well inside Rhai's map cap; their 2 KiB keys are not
        // inside a 1 MiB heap.
        let keys = r#"fn decide(ctx) {
            let key = "k";
            while key.len() < 2000 { key += key; }
            let m = #{};
            for i in 0..700 { m[key + i] = i; }
            []
        }"#;
        let tight = Limits {
            rhai_max_memory_bytes: 1 << 20,
            ..Limits::default()
        };
        assert_eq!(run(keys, tight).err(), Some(PolicyError::Memory));
        assert_eq!(run(keys, Limits::default()), Ok(vec![]));
    }

    #[test]
    fn pad_refuses_copies_past_the_heap_budget_before_making_them() {
        // 60,000 copies of a map with a 4 KiB key are 240 MiB that Rhai's
        // checks count as 60,000 entries; the engine's `pad` refuses them
        // with the heap still nearly empty.
        let padded = r#"fn decide(ctx) {
            let key = "k";
            while key.len() < 4096 { key += key; }
            let m = #{};
            m[key] = 1;
            let all = [];
            all.pad(60000, m);
            []
        }"#;
        let peak = || {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                << 10
        };
        let before = peak();
        assert_eq!(
            run(padded, Limits::default()).err(),
            Some(PolicyError::Memory)
        );
        assert!(peak() - before < 128 << 20, "the copies were made");
        let fits =
            r#"fn decide(ctx) { let a = []; a.pad(1000, "x"); [#{id: "a", score: a.len()}] }"#;
        assert_eq!(run(fits, Limits::default()).unwrap()[0].score, 1000.0);
    }

    #[test]
    fn scripts_cannot_import_or_eval() {
        let engine = RhaiEngine::new(&Limits::default());
        assert!(
            engine
                .compile(r#"import "x" as y; fn decide(ctx) { [] }"#)
                .is_err()
        );
        assert!(engine.compile(r#"fn decide(ctx) { eval("1") }"#).is_err());
    }
}
