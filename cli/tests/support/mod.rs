//! What the CLI's test files share: where the repository and its test tools are.

use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Python of the virtual environment `./infra/test` creates (`.venv`, or `$VOICELAKE_VENV`).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("VOICELAKE_VENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run ./infra/test, which installs the pinned tools into .venv", python.display());
    python
}
