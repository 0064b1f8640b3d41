;; recurse.wat: moment_decide recurses without bound. The host must
;; catch the stack overflow as a trap (wasmtime's max_wasm_stack) and answer
;; the fallback; the host's own stack is never at risk.
(module
  (memory (export "memory") 1)
  ;; moment_alloc: a bump allocator from $next upward, growing memory as
  ;; needed; traps if memory cannot grow.
  (global $next (mut i32) (i32.const 4096))
  (func (export "moment_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local $need i32)
    (local.set $ptr (global.get $next))
    (global.set $next (i32.add (local.get $ptr) (local.get $len)))
    (local.set $need
      (i32.sub
        (i32.shr_u (i32.add (global.get $next) (i32.const 65535)) (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $need)) (i32.const -1))
          (then unreachable))))
    (local.get $ptr))
  ;; $down calls itself forever; the add after the call keeps it from being
  ;; a tail call.
  (func $down (param $depth i32) (result i32)
    (i32.add (call $down (i32.add (local.get $depth) (i32.const 1))) (i32.const 1)))
  (func (export "moment_decide") (param $ptr i32) (param $len i32) (result i64)
    (i64.extend_i32_u (call $down (i32.const 0))))
)
