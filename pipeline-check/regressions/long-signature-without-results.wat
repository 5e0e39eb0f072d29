;; Found by the on-device check (module 438 of its seeds): an export whose Rust
;; signature is long enough to be wrapped and that returns nothing. The bindings stage
;; cut the line at the `)` of `Result<(), Error>` instead of the parameter list's, and
;; the firmware did not compile.
(module
  (func (export "export2") (param f32 i64 i64 i64 i32 i64)))
