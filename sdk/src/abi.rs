//! WASM ABI v1 glue, which [`export_policy!`](crate::export_policy) wires to
//! the module's exports.
//!
//! The host side of one decision, step by step:
//!
//! 1. `moment_alloc(len)` → [`alloc`] reserves `len` bytes and returns their
//!    address.
//! 2. The host writes the input JSON there.
//! 3. `moment_decide(ptr, len)` → [`take_input`] takes those bytes back,
//!    [`decide_json`] parses them, runs the policy and serializes the answer,
//!    and the answer is leaked so it stays readable after the call returns.
//! 4. The host reads `len = result & 0xffff_ffff` bytes at
//!    `ptr = result >> 32` (see [`pack`]).
//!
//! The host discards the instance after one decision, so the leaked answer is
//! freed with it. Malformed input is answered with `{"error":"…"}`, which has
//! no `actions` and so is rejected by the host as a policy error; a panic in
//! the policy aborts (a trap on wasm32-unknown-unknown), which the host also
//! treats as a policy failure.
//!
//! Only this module needs `unsafe`, and only to hand raw memory across the
//! host boundary.

use serde::Serialize;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use lol_alloc;

use crate::{Context, Ranked};

/// What `moment_decide` writes back: `{"actions":[…]}`.
#[derive(Serialize)]
struct Answer<'a> {
    actions: &'a [Ranked],
}

/// Runs `policy` on one input document and returns the output document.
///
/// This is the whole of `moment_decide` minus the raw memory handling, so it
/// runs natively too. Returns `{"actions":[…]}` on success and
/// `{"error":"…"}` when the input is not a valid context or the policy
/// returns a score that is not a finite number.
pub fn decide_json(input: &[u8], policy: impl FnOnce(&Context) -> Vec<Ranked>) -> Vec<u8> {
    let ctx: Context = match serde_json::from_slice(input) {
        Ok(ctx) => ctx,
        Err(e) => return error(&format!("invalid input: {e}")),
    };
    let actions = policy(&ctx);
    if let Some(bad) = actions.iter().find(|a| !a.score.is_finite()) {
        return error(&format!(
            "policy returned a non-finite score for action {:?}",
            bad.id
        ));
    }
    serde_json::to_vec(&Answer { actions: &actions })
        .unwrap_or_else(|e| error(&format!("cannot serialize answer: {e}")))
}

/// Serializes `{"error": message}`.
fn error(message: &str) -> Vec<u8> {
    serde_json::json!({ "error": message })
        .to_string()
        .into_bytes()
}

/// Reserves `len` zeroed bytes for the host's input and returns their address.
/// Ownership passes to whoever calls [`take_input`] with the same pair.
pub fn alloc(len: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; len].into_boxed_slice()).cast::<u8>()
}

/// Takes back the buffer that [`alloc`] reserved, to read and then free it.
///
/// # Safety
///
/// `ptr` must have been returned by `alloc(len)` with this very `len`, and not
/// passed to `take_input` before.
#[allow(unsafe_code)]
pub unsafe fn take_input(ptr: *mut u8, len: usize) -> Box<[u8]> {
    // SAFETY: by this function's contract, `ptr` and `len` describe a boxed
    // slice that `alloc` leaked and nobody has reclaimed, so we own it now.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) }
}

/// Packs an output address and length into `moment_decide`'s return value:
/// address in the high 32 bits, length in the low 32 bits.
pub fn pack(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// The inverse of [`pack`], as the host computes it.
pub fn unpack(packed: i64) -> (u32, u32) {
    let bits = packed as u64;
    ((bits >> 32) as u32, (bits & 0xffff_ffff) as u32)
}

/// `moment_alloc(len: i32) -> i32`: [`alloc`] with wasm32 addresses.
#[cfg(target_arch = "wasm32")]
pub fn export_alloc(len: i32) -> i32 {
    alloc(usize::try_from(len).unwrap_or(0)) as usize as i32
}

/// `moment_decide(ptr: i32, len: i32) -> i64`: take the input, run `policy`,
/// leak the answer and return its packed address and length.
///
/// # Safety
///
/// `ptr` and `len` must be a pair from `moment_alloc(len)`, used once, as ABI
/// v1 requires of the host.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
pub unsafe fn export_decide(
    ptr: i32,
    len: i32,
    policy: impl FnOnce(&Context) -> Vec<Ranked>,
) -> i64 {
    let len = usize::try_from(len).unwrap_or(0);
    // SAFETY: the caller (the host, via the exported `moment_decide`)
    // guarantees the pair came from `moment_alloc(len)` and is used once.
    let input = unsafe { take_input(ptr as u32 as usize as *mut u8, len) };
    let output = decide_json(&input, policy);
    drop(input);
    let output: &'static [u8] = Box::leak(output.into_boxed_slice());
    pack(output.as_ptr() as usize as u32, output.len() as u32)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{alloc, decide_json, pack, take_input, unpack};
    use crate::{Context, Ranked};
    use serde_json::{Value, json};

    fn run(input: &str, policy: impl FnOnce(&Context) -> Vec<Ranked>) -> Value {
        serde_json::from_slice(&decide_json(input.as_bytes(), policy)).unwrap()
    }

    #[test]
    fn answers_actions() {
        let out = run(
            r#"{"customer_id":"c","candidates":[{"id":"a","kind":"offer","value":1}]}"#,
            |ctx| {
                ctx.candidates
                    .iter()
                    .map(|c| Ranked::new(&c.id, 0.5))
                    .collect()
            },
        );
        assert_eq!(out, json!({"actions": [{"id": "a", "score": 0.5}]}));
    }

    #[test]
    fn malformed_input_is_an_error_document() {
        for input in [
            "",
            "not json",
            "[]",
            r#"{"stage":"x"}"#,
            r#"{"customer_id":1}"#,
        ] {
            let out = run(input, |_| unreachable!("policy must not run"));
            assert!(out.get("actions").is_none(), "{input:?} gave {out}");
            assert!(out["error"].as_str().unwrap().starts_with("invalid input"));
        }
    }

    #[test]
    fn non_finite_scores_are_an_error_document() {
        for score in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let out = run(r#"{"customer_id":"c"}"#, |_| vec![Ranked::new("a", score)]);
            assert!(out.get("actions").is_none());
            assert!(out["error"].is_string());
        }
    }

    #[test]
    fn pack_round_trips_and_puts_the_address_high() {
        assert_eq!(pack(1, 2), (1 << 32) | 2);
        for (ptr, len) in [(0, 0), (1, 2), (u32::MAX, 7), (65_536, u32::MAX)] {
            assert_eq!(unpack(pack(ptr, len)), (ptr, len));
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn alloc_then_take_input_round_trips() {
        let data = b"{\"customer_id\":\"c\"}";
        let ptr = alloc(data.len());
        // SAFETY: `alloc` just reserved `data.len()` writable bytes at `ptr`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr, data.len()) };
        // SAFETY: `ptr` came from `alloc(data.len())` and is taken back once.
        let back = unsafe { take_input(ptr, data.len()) };
        assert_eq!(&*back, data);
        let empty = alloc(0);
        // SAFETY: as above, for an empty buffer.
        assert!(unsafe { take_input(empty, 0) }.is_empty());
    }
}
