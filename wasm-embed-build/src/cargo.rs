//! What the build says to Cargo, and the environment it reads, in one place: its
//! warnings, the files and variables whose change reruns the build script, and its
//! one-line error. Every environment variable the build reads goes through [`var_os`],
//! so each gets its `rerun-if-env-changed`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Mutex;

/// The variables read so far, in the order they were first read.
static READ: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The variable `name`, noted for `rerun-if-env-changed`.
pub(crate) fn var_os(name: &str) -> Option<OsString> {
    let mut read = READ.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !read.iter().any(|n| n == name) {
        read.push(name.to_owned());
    }
    std::env::var_os(name)
}

/// The variable `name` as text, noted for `rerun-if-env-changed`.
pub(crate) fn var(name: &str) -> Option<String> {
    var_os(name).and_then(|value| value.into_string().ok())
}

/// What one build tells Cargo. Outside a build script (a test, a tool) nothing is
/// printed, and the warnings are only collected.
pub(crate) struct Directives {
    build_script: bool,
    warnings: Vec<String>,
}

impl Directives {
    pub(crate) fn new(build_script: bool) -> Directives {
        Directives { build_script, warnings: Vec::new() }
    }

    /// A warning, shown by Cargo beside the build.
    pub(crate) fn warning(&mut self, text: String) {
        if self.build_script {
            build_rs::output::warning(&text);
        }
        self.warnings.push(text);
    }

    /// Links the firmware with the linker script `file` as well, after the runtime's.
    pub(crate) fn link_script(&mut self, file: &std::path::Path) {
        if self.build_script {
            if let Some(dir) = file.parent() {
                build_rs::output::rustc_link_search(dir);
            }
            build_rs::output::rustc_link_arg(&format!("-T{}", file.file_name().unwrap_or_default().to_string_lossy()));
        }
    }

    /// Tells Cargo to rerun the build script when one of `files`, or a variable the
    /// build read, changes; returns the warnings given.
    pub(crate) fn finish(self, files: &[PathBuf]) -> Vec<String> {
        if self.build_script {
            let read = READ.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for variable in read.iter() {
                build_rs::output::rerun_if_env_changed(variable);
            }
            for file in files {
                build_rs::output::rerun_if_changed(file);
            }
        }
        self.warnings
    }
}

/// Reports `error` to Cargo and ends the build script: Cargo's `error` directive takes
/// one line; anything after it (rustc's own messages) follows on stderr.
pub(crate) fn fail(error: &crate::Error) -> ! {
    let text = error.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    for line in lines {
        eprintln!("{line}");
    }
    build_rs::output::error(first);
    std::process::exit(1);
}
