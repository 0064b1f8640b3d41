;; wasi_import.wat: an otherwise ABI v1-shaped policy that imports WASI's
;; fd_write to print to stdout. Moment offers no WASI: the host must refuse
;; the module at upload (422, naming the import), before it ever runs.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
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
  ;; An iovec at 0 for the 6 bytes "hello\n" at 8; fd_write stores the count at 32.
  (data (i32.const 0) "\08\00\00\00\06\00\00\00")
  (data (i32.const 8) "hello\n")
  (data (i32.const 64) "{\"actions\":[]}")
  (func (export "moment_decide") (param $ptr i32) (param $len i32) (result i64)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 32)))
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 14)))
)
