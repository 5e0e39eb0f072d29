//! Update packages from the build: written for every guest when the firmware has an
//! update key, signed with a development key named by `WASM_EMBED_SIGNING_KEY`,
//! verifying against what the emitted module declares, and the secret key never
//! copied into anything the build writes. One test, because it sets a variable the
//! build reads.

mod common;

use std::path::{Path, PathBuf};

use common::{builder, built_guest};
use wasm_embed::update::{Package, SecretKey, Updatable, Version, read_public_key};

const INTERFACE: &str = "import host.extra: () -> i32\nexport add_with_extra: (i32, i32) -> i32\n";

/// Fails if `file` holds `seed` as raw bytes, in hex of either case, or as a list of
/// numbers (as the emitted module writes keys), however it is wrapped.
fn assert_no_secret(file: &Path, seed: &[u8; 32]) {
    let bytes = std::fs::read(file).unwrap();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let decimal: String = format!("{seed:?}").replace(' ', "");
    let decimal = decimal.trim_matches(|c| c == '[' || c == ']');
    let shown = file.display();
    assert!(!bytes.windows(32).any(|w| w == seed), "{shown} holds the secret key");
    assert!(!compact.contains(&hex), "{shown} holds the secret key in hex");
    assert!(!compact.contains(decimal), "{shown} holds the secret key as numbers");
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_build_writes_signed_packages_that_verify_and_never_copies_the_secret_key() {
    let keys = common::out_dir("update-keys");
    let secret = SecretKey::from_seed([0x5a; 32]);
    std::fs::write(keys.join("dev.key"), secret.to_file_text()).unwrap();
    std::fs::write(keys.join("dev.pub"), secret.public_key().to_file_text()).unwrap();
    let updates = common::out_dir("update-packages");

    // The add guest for the key `public`.
    let build = |public: &str| {
        builder("update").guest("guests/add").update_key(keys.join(public)).update_dir(&updates).try_compile()
    };

    // Without a signing key: the package to sign elsewhere, and the module's key.
    let output = build("dev.pub").unwrap();
    let built = &output.guests[0];
    assert_eq!(built.unsigned_update.as_deref(), Some(&*updates.join("add.update.unsigned")));
    assert_eq!(built.update, None);
    // rustfmt wraps the emitted module as it likes.
    let compact = |text: &str| text.replace(char::is_whitespace, "").replace(",]", "]").replace(",)", ")");
    let module = compact(&std::fs::read_to_string(&output.module).unwrap());
    for declared in [
        format!("pub const UPDATE_KEY: ::wasm_embed::update::PublicKey = ::wasm_embed::update::PublicKey::new({:?});", secret.public_key().bytes()),
        format!(
            "pub static UPDATABLE: ::wasm_embed::update::Updatable = ::wasm_embed::update::Updatable::new(&GUEST, \
             ::wasm_embed::update::Version::new(0, 1, 0), {INTERFACE:?});"
        ),
    ] {
        assert!(module.contains(&compact(&declared)), "{declared} not in {module}");
    }
    let signed_elsewhere = secret.sign(&std::fs::read(updates.join("add.update.unsigned")).unwrap()).unwrap();

    // With one: signed by the build, the same bytes `sign` makes.
    // SAFETY: this binary's only test, so no other thread reads the environment.
    unsafe { std::env::set_var("WASM_EMBED_SIGNING_KEY", keys.join("dev.key")) };
    let output = build("dev.pub").unwrap();
    let built = &output.guests[0];
    let package = std::fs::read(built.update.as_ref().unwrap()).unwrap();
    assert_eq!(package, signed_elsewhere);
    let guest = built_guest(&output, "add");
    let updatable: &'static Updatable = Box::leak(Box::new(Updatable::new(guest, Version::new(0, 1, 0), INTERFACE)));
    let verified = Package::verify(&package, updatable, &secret.public_key(), Version::ZERO).unwrap();
    assert_eq!(verified.version(), Version::new(0, 1, 0), "the guest crate's version");
    assert_eq!(verified.cwasm(), &std::fs::read(&built.cwasm).unwrap()[..]);
    assert_eq!(verified.settings().max_wasm_stack, guest.settings().max_wasm_stack.max(16));
    assert!(package.len() - verified.cwasm().len() <= 256, "{} bytes of overhead", package.len() - verified.cwasm().len());

    // The secret key is read, never copied: not in OUT_DIR, the module or the packages.
    for file in files_under(&common::out_dir_path("update")).into_iter().chain(files_under(&updates)) {
        assert_no_secret(&file, &[0x5a; 32]);
    }

    // A signing key that is not the update key's other half, and a secret key given as
    // the public one, are one-line errors.
    let other = SecretKey::from_seed([0x77; 32]);
    std::fs::write(keys.join("other.key"), other.to_file_text()).unwrap();
    unsafe { std::env::set_var("WASM_EMBED_SIGNING_KEY", keys.join("other.key")) };
    let error = build("dev.pub");
    assert_eq!(
        error.err().unwrap().to_string(),
        format!(
            "wasm-embed-build: key file {}: WASM_EMBED_SIGNING_KEY names a key whose public half is not the \
             firmware's update key; name the secret key made with it by `cargo wasm-embed keygen`",
            keys.join("other.key").display()
        )
    );
    unsafe { std::env::remove_var("WASM_EMBED_SIGNING_KEY") };

    // The metadata's `update-key`, relative to the firmware's manifest, does what
    // Builder::update_key does.
    let firmware = common::out_dir("update-metadata");
    std::fs::write(
        firmware.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fw\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n\n[lib]\npath = \"lib.rs\"\n\n\
             [package.metadata.wasm-embed]\nguests = [{:?}]\nupdate-key = \"keys/dev.pub\"\n",
            common::repo().join("guests/add").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(firmware.join("lib.rs"), "").unwrap();
    std::fs::create_dir_all(firmware.join("keys")).unwrap();
    std::fs::copy(keys.join("dev.pub"), firmware.join("keys/dev.pub")).unwrap();
    let output = builder("update-from-metadata")
        .manifest_dir(&firmware)
        .update_dir(firmware.join("updates"))
        .try_compile()
        .unwrap();
    assert_eq!(output.guests[0].unsigned_update.as_deref(), Some(&*firmware.join("updates/add.update.unsigned")));
    let module = compact(&std::fs::read_to_string(&output.module).unwrap());
    assert!(module.contains(&compact(&format!("PublicKey::new({:?})", secret.public_key().bytes()))), "{module}");
    // And so it does for a firmware whose build.rs names its guests with Builder::guest.
    let output = builder("update-guest-and-metadata")
        .manifest_dir(&firmware)
        .guest(common::repo().join("guests/add").to_str().unwrap())
        .update_dir(firmware.join("updates-of-guest"))
        .try_compile()
        .unwrap();
    assert_eq!(
        output.guests[0].unsigned_update.as_deref(),
        Some(&*firmware.join("updates-of-guest/add.update.unsigned"))
    );
    let module = compact(&std::fs::read_to_string(&output.module).unwrap());
    assert!(module.contains(&compact(&format!("PublicKey::new({:?})", secret.public_key().bytes()))), "{module}");

    // The development key: made once, its secret half its owner's alone, used to sign,
    // marked as such in the module, and nowhere in what the build writes.
    let development = |test: &str| {
        builder(test)
            .guest("guests/add")
            .development_update_key()
            .update_dir(common::out_dir(&format!("{test}-packages")))
            .try_compile()
            .unwrap()
    };
    let output = development("update-development-key");
    let target = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_owned();
    let key = target.join("wasm-embed/development-key/update.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "{}", key.display());
    }
    let key_text = std::fs::read_to_string(&key).unwrap();
    let public = read_public_key(&std::fs::read_to_string(key.with_extension("pub")).unwrap()).unwrap();
    let package = std::fs::read(output.guests[0].update.as_ref().unwrap()).unwrap();
    assert!(Package::check_signature(&package, &public).is_ok());
    let module = compact(&std::fs::read_to_string(&output.module).unwrap());
    assert!(module.contains("pubconstUPDATE_KEY_IS_DEVELOPMENT:bool=true;"), "{module}");
    let seed: [u8; 32] = {
        let hex = key_text.trim().rsplit(' ').next().unwrap();
        std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
    };
    assert_eq!(SecretKey::from_seed(seed).public_key(), public);
    for file in files_under(&common::out_dir_path("update-development-key"))
        .into_iter()
        .chain(files_under(&common::out_dir_path("update-development-key-packages")))
    {
        assert_no_secret(&file, &seed);
    }
    // A debug build with it says nothing; a release build signed with it is warned.
    let warning = "a release build whose guests accept updates signed with the development key";
    assert!(!output.warnings.iter().any(|w| w.starts_with(warning)), "{:?}", output.warnings);
    // SAFETY: this binary's only test, so no other thread reads the environment.
    unsafe { std::env::set_var("PROFILE", "release") };
    // A second build, here of another firmware in the same target directory, signs
    // with the same key: it is made once.
    let again = development("update-development-key-again");
    unsafe { std::env::remove_var("PROFILE") };
    assert!(
        again.warnings.iter().any(|w| w.starts_with(warning) && w.ends_with("sign with `cargo wasm-embed sign`")),
        "{:?}",
        again.warnings
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);
    let package = std::fs::read(again.guests[0].update.as_ref().unwrap()).unwrap();
    assert!(Package::check_signature(&package, &public).is_ok());
    // A firmware with a key of its own is not marked.
    let module = compact(&std::fs::read_to_string(&build("dev.pub").unwrap().module).unwrap());
    assert!(module.contains("pubconstUPDATE_KEY_IS_DEVELOPMENT:bool=false;"), "{module}");
    let error = build("dev.key");
    assert_eq!(
        error.err().unwrap().to_string(),
        format!(
            "wasm-embed-build: key file {}: it holds a secret key, which must never be built into a firmware; give \
             the .pub file beside it",
            keys.join("dev.key").display()
        )
    );
}
