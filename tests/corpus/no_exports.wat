;; no_exports.wat: a valid module with memory and a function, but no
;; exports at all, so neither memory, moment_alloc nor moment_decide. The host
;; must refuse it at upload (422, naming the missing exports).
(module
  (memory 1)
  (func $decide (param $ptr i32) (param $len i32) (result i64)
    (i64.const 0))
)
