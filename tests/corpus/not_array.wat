;; not_array.wat: output whose "actions" is an object, not an array. The host
;; must treat it as a policy error (bad output).
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
  ;; The answer, 46 bytes at address 16.
  (data (i32.const 16) "{\"actions\":{\"id\":\"generic-welcome\",\"score\":1}}")
  ;; moment_decide: ignores its input and returns (16 << 32) | 46.
  (func (export "moment_decide") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 46)))
)
