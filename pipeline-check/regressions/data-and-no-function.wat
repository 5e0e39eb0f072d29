;; Found by the on-device check (module 100 of its seeds): a module with a data segment
;; and no function of its own. Wasmtime copies the data in at instantiation with code it
;; compiles (the module's startup function, entered by `module_start[0]::Array`), but the
;; stack stage bounded only the exports' entries, so this guest got 16 bytes of Pulley
;; stack; the startup code overflowed it in its entry trampoline, where Wasmtime 48
;; panics instead of trapping, and the firmware died with a hard fault.
(module
  (memory 1)
  (export "memory" (memory 0))
  (data (i32.const 1324) "\0f"))
