;; out_of_bounds.wat: moment_decide returns ptr 0xFFFFFFF0 and len 0x20 with
;; one 64 KiB page of memory. The range lies outside memory, and ptr + len
;; even wraps around in 32-bit arithmetic (to 0x10). The host must check the
;; range with non-wrapping arithmetic, never read it, and treat it as a
;; policy error (bad output).
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
  (func (export "moment_decide") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 0xFFFFFFF0) (i64.const 32)) (i64.const 0x20)))
)
