;; grow_memory.wat: moment_decide grows memory one 64 KiB page at a time,
;; writing to every new page so it is really committed, until memory.grow
;; fails; then it traps. The host's memory cap must stop it (memory.grow
;; returns -1, or traps if the limiter says so) well before the machine runs
;; out, and the host answers the fallback.
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
    (local $old i32)
    (loop $grow
      (local.set $old (memory.grow (i32.const 1)))
      (if (i32.ne (local.get $old) (i32.const -1))
        (then
          ;; Touch the new page so the host must really back it.
          (i32.store8 (i32.shl (local.get $old) (i32.const 16)) (i32.const 1))
          (br $grow))))
    ;; memory.grow failed: give up loudly.
    unreachable)
)
