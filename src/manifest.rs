//! Model manifests: the TOML file that describes one network, so that an
//! administrator can add a model without touching code. This module reads and
//! checks a manifest; loading the network itself is left to `model`.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use serde::Deserialize;

/// Order of the colour channels the network expects in its input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Channels {
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

/// What the network's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// A probability distribution, used as it is.
    Probabilities,
    /// Raw scores; softmax turns them into probabilities.
    Logits,
}

/// One model, as described by its manifest, with its file paths resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What students and the command line call the model.
    pub name: String,
    /// A readable title for pages and logs.
    pub title: String,
    /// The ONNX file, relative to the manifest's folder or absolute.
    pub onnx: PathBuf,
    /// The labels file, one class a line in output order.
    pub labels: PathBuf,
    /// Side of the square crop fed to the network.
    pub input_size: u32,
    /// The image is resized so that its shorter side is this, then centre-cropped.
    pub resize_shorter_to: u32,
    /// Order of the input channels.
    pub channels: Channels,
    /// A pixel value 0..255 is multiplied by this ...
    pub scale: f32,
    /// ... then this is subtracted, per channel in `channels` order ...
    pub mean: [f32; 3],
    /// ... then the result is divided by this.
    pub std: [f32; 3],
    /// Whether the output is probabilities or logits.
    pub output: OutputKind,
    /// Name of the input tensor, when the model has several or to check it.
    #[serde(default)]
    pub input_name: Option<String>,
    /// Name of the output tensor, when the model has several or to check it.
    #[serde(default)]
    pub output_name: Option<String>,
    /// Where to get the model, shown when its file is missing.
    #[serde(default)]
    pub fetch_hint: Option<String>,
}

impl Manifest {
    /// Reads a manifest and resolves its relative paths against its folder.
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read model manifest {}", path.display()))?;
        let mut manifest: Manifest = toml::from_str(&text)
            .with_context(|| format!("model manifest {} is not valid", path.display()))?;

        let folder = path.parent().unwrap_or(Path::new("."));
        manifest.onnx = folder.join(&manifest.onnx);
        manifest.labels = folder.join(&manifest.labels);
        manifest
            .check()
            .with_context(|| format!("model manifest {} is not valid", path.display()))?;
        Ok(manifest)
    }

    /// Finds a manifest by name (`models/NAME.toml`) or takes a path as it is.
    pub fn resolve(name_or_path: &str, models_dir: &Path) -> anyhow::Result<PathBuf> {
        let as_path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || as_path.components().count() > 1 {
            return Ok(as_path.to_path_buf());
        }
        let candidate = models_dir.join(format!("{name_or_path}.toml"));
        if candidate.is_file() {
            return Ok(candidate);
        }
        let known = known_models(models_dir);
        bail!(
            "no model named {name_or_path:?}: {} does not exist (models found in {}: {})",
            candidate.display(),
            models_dir.display(),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(!self.name.trim().is_empty(), "`name` is empty");
        ensure!(self.input_size >= 8, "`input_size` must be at least 8, not {}", self.input_size);
        ensure!(
            self.resize_shorter_to >= self.input_size,
            "`resize_shorter_to` ({}) must be at least `input_size` ({}): the centre crop \
             cannot be larger than the resized image",
            self.resize_shorter_to,
            self.input_size
        );
        ensure!(self.scale.is_finite() && self.scale > 0.0, "`scale` must be positive");
        ensure!(self.std.iter().all(|s| s.is_finite() && *s != 0.0), "`std` must not contain zero");
        ensure!(self.mean.iter().all(|m| m.is_finite()), "`mean` must be finite numbers");
        Ok(())
    }
}

fn known_models(models_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(models_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "m"
        title = "M"
        onnx = "m.onnx"
        labels = "l.txt"
        input_size = 224
        resize_shorter_to = 256
        channels = "BGR"
        scale = 1.0
        mean = [103.0, 117.0, 123.0]
        std = [1.0, 1.0, 1.0]
        output = "probabilities"
    "#;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("m.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn paths_are_resolved_against_the_manifest_folder() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest::load(&write(dir.path(), GOOD)).unwrap();
        assert_eq!(manifest.onnx, dir.path().join("m.onnx"));
        assert_eq!(manifest.labels, dir.path().join("l.txt"));
        assert_eq!(manifest.channels, Channels::Bgr);
        assert_eq!(manifest.output, OutputKind::Probabilities);
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (GOOD.replace("\"BGR\"", "\"BRG\""), "unknown variant"),
            (GOOD.replace("resize_shorter_to = 256", "resize_shorter_to = 100"), "centre crop"),
            (GOOD.replace("std = [1.0, 1.0, 1.0]", "std = [1.0, 0.0, 1.0]"), "zero"),
            (GOOD.replace("name = \"m\"", "name = \"m\"\ncolour = 1"), "unknown field"),
            (GOOD.replace("output = \"probabilities\"", ""), "missing field `output`"),
        ];
        for (text, expected) in cases {
            let err = Manifest::load(&write(dir.path(), &text)).unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains(expected), "{message:?} should contain {expected:?}");
        }
    }

    #[test]
    fn names_resolve_to_manifests_in_the_models_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), GOOD);
        assert_eq!(Manifest::resolve("m", dir.path()).unwrap(), dir.path().join("m.toml"));
        assert_eq!(Manifest::resolve("x/y.toml", dir.path()).unwrap(), Path::new("x/y.toml"));
        let err = Manifest::resolve("nope", dir.path()).unwrap_err().to_string();
        assert!(err.contains("no model named \"nope\"") && err.contains(": m)"), "{err}");
    }
}
