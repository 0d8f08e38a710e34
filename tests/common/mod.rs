//! What the integration tests share: where the shared test data lives, and
//! the models in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use imagenet_classroom::decode::DecodeLimits;
use imagenet_classroom::manifest::Manifest;
use imagenet_classroom::model::Classifier;

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared test data folder (`../shared` beside the repository, or
/// `$IMAGENET_CLASSROOM_SHARED`). Panics with where it looked when missing:
/// tests that need real models and photos fail rather than skip.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("IMAGENET_CLASSROOM_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("..").join("shared"));
    assert!(
        dir.join("README.md").is_file() && dir.join("models").is_dir(),
        "the shared test data is missing: looked for {} (set IMAGENET_CLASSROOM_SHARED to \
         its folder, which holds README.md, models/, labels/ and images/)",
        dir.display()
    );
    dir
}

/// A file inside the shared test data, which must exist.
pub fn shared_file(relative: &str) -> PathBuf {
    let path = shared().join(relative);
    assert!(path.is_file(), "shared test file missing: looked for {}", path.display());
    path
}

/// The bytes of one of the shared photographs.
pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(shared_file(&format!("images/{name}"))).unwrap()
}

/// A shipped manifest from `models/`, pointed at the shared data folder.
pub fn manifest(name: &str) -> Manifest {
    let mut manifest = Manifest::load(&repo().join("models").join(format!("{name}.toml")))
        .unwrap_or_else(|e| panic!("cannot load models/{name}.toml: {e:#}"));
    for path in [&mut manifest.onnx, &mut manifest.labels] {
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let folder = if file.ends_with(".onnx") { "models" } else { "labels" };
        *path = shared_file(&format!("{folder}/{file}"));
    }
    manifest
}

/// A loaded shared model.
pub fn classifier(name: &str) -> Classifier {
    Classifier::load(manifest(name), DecodeLimits::default())
        .unwrap_or_else(|e| panic!("cannot load model {name}: {e:#}"))
}

/// Whether `path` exists (for messages).
pub fn describe(path: &Path) -> String {
    format!("{} (exists: {})", path.display(), path.exists())
}
pub mod apache;
pub mod chromium;
