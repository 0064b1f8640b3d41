;; huge_output.wat: moment_decide grows memory to 61 MiB (976 pages) and
;; returns ptr 0, len 60 MiB (62914560). The host must refuse it by its
;; output size cap without copying or parsing it, and answer the fallback. If
;; the memory cap is below 61 MiB the grow fails and the same range is out of
;; bounds: either way a policy error, never a 60 MiB allocation in the host.
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
    ;; Grow from the current size to 976 pages; a failed grow is ignored.
    (drop (memory.grow (i32.sub (i32.const 976) (memory.size))))
    (i64.const 62914560))
)
