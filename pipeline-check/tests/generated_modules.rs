//! The stages never change what a module computes: generated modules, each run before
//! and after strip, wasm-opt, the page-size change and precompilation (see the crate's
//! documentation for what is compared).

use std::path::PathBuf;

use arbitrary::Unstructured;
use pipeline_check::{Outcome, check_module, generate, input};

/// Enough for every kind of module to turn up many times; about two minutes on two
/// cores. `PIPELINE_CHECK_MODULES=N` runs another number (the seeds are 0..N).
const MODULES: u64 = 1_200;

fn modules() -> u64 {
    std::env::var("PIPELINE_CHECK_MODULES").map_or(MODULES, |n| n.parse().expect("PIPELINE_CHECK_MODULES is a number"))
}

#[derive(Default, Debug)]
struct Totals {
    modules: u64,
    instantiated: u64,
    calls: u64,
    traps: u64,
    compared: u64,
    stack_overflows: u64,
    refused: u64,
    other_trap: u64,
    data_segments: u64,
    memory_grow: u64,
    table: u64,
    globals: u64,
    imports: u64,
    custom_sections: u64,
    one_byte_pages: u64,
}

impl Totals {
    fn add(&mut self, outcome: &Outcome) {
        let s = outcome.shape;
        self.modules += 1;
        self.instantiated += u64::from(outcome.instantiated);
        self.calls += outcome.calls as u64;
        self.traps += outcome.traps as u64;
        self.compared += outcome.compared as u64;
        self.stack_overflows += u64::from(outcome.stack_overflow);
        self.refused += u64::from(outcome.refused);
        self.other_trap += u64::from(outcome.other_trap);
        self.data_segments += u64::from(s.data_segments);
        self.memory_grow += u64::from(s.memory_grow);
        self.table += u64::from(s.table);
        self.globals += u64::from(s.globals);
        self.imports += u64::from(s.imports);
        self.custom_sections += u64::from(s.custom_sections);
        self.one_byte_pages += u64::from(s.one_byte_pages);
    }
}

#[test]
fn every_stage_keeps_what_a_thousand_generated_modules_compute() {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("generated-modules");
    std::fs::create_dir_all(&scratch).unwrap();
    let modules = modules();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4) as u64;
    let totals = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                let scratch = &scratch;
                scope.spawn(move || {
                    let mut totals = Totals::default();
                    for seed in (worker..modules).step_by(threads as usize) {
                        let wasm = generate(&mut Unstructured::new(&input(seed)))
                            .unwrap_or_else(|e| panic!("module {seed} could not be generated: {e}"));
                        match check_module(&wasm, scratch, &format!("worker-{worker}")) {
                            Ok(outcome) => totals.add(&outcome),
                            Err(difference) => {
                                let path = scratch.join(format!("module-{seed}.wasm"));
                                std::fs::write(&path, &difference.input).unwrap();
                                panic!("module {seed}: {difference} (its input: {})", path.display());
                            }
                        }
                    }
                    totals
                })
            })
            .collect();
        let mut all = Totals::default();
        for worker in workers {
            let t = worker.join().expect("a worker found a difference");
            for (sum, part) in [
                (&mut all.modules, t.modules),
                (&mut all.instantiated, t.instantiated),
                (&mut all.calls, t.calls),
                (&mut all.traps, t.traps),
                (&mut all.compared, t.compared),
                (&mut all.stack_overflows, t.stack_overflows),
                (&mut all.refused, t.refused),
                (&mut all.other_trap, t.other_trap),
                (&mut all.data_segments, t.data_segments),
                (&mut all.memory_grow, t.memory_grow),
                (&mut all.table, t.table),
                (&mut all.globals, t.globals),
                (&mut all.imports, t.imports),
                (&mut all.custom_sections, t.custom_sections),
                (&mut all.one_byte_pages, t.one_byte_pages),
            ] {
                *sum += part;
            }
        }
        all
    });
    println!("{totals:#?}");
    assert_eq!(totals.modules, modules);
    // The run proves something only if the modules exercised what can go wrong.
    let kinds = [
        ("instantiated", totals.instantiated),
        ("with data segments", totals.data_segments),
        ("with memory.grow", totals.memory_grow),
        ("with a table", totals.table),
        ("with globals", totals.globals),
        ("with imports", totals.imports),
        ("with custom sections", totals.custom_sections),
        ("given 1-byte pages", totals.one_byte_pages),
    ];
    for (kind, count) in kinds {
        assert!(count >= modules / 20, "only {count} of {modules} modules {kind}: {totals:#?}");
    }
    assert!(totals.traps > 0 && totals.calls > totals.traps, "{totals:#?}");
    // Overflows skip the comparison: they must stay rare.
    assert!(totals.stack_overflows <= modules / 100, "{totals:#?}");
}
