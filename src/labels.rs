//! Class labels: one line per class, in the order of the network's output.
//! Lines may be WordNet style (`n01440764 tench, Tinca tinca`) or a bare name;
//! either way the readable name is kept.

use std::path::Path;

use anyhow::{ensure, Context};

/// The readable names of a model's classes, indexed by output position.
#[derive(Debug, Clone)]
pub struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// Reads a labels file.
    pub fn load(path: &Path) -> anyhow::Result<Labels> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read labels file {}", path.display()))?;
        let labels = Labels::parse(&text);
        ensure!(!labels.names.is_empty(), "labels file {} has no labels", path.display());
        Ok(labels)
    }

    /// Parses the text of a labels file, skipping blank lines.
    pub fn parse(text: &str) -> Labels {
        let names = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(readable_name)
            .collect();
        Labels { names }
    }

    /// The number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no classes at all.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The full readable name of class `index` (`tench, Tinca tinca`).
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The first of the class's comma-separated names (`tench`).
    pub fn short_name(&self, index: usize) -> &str {
        self.names[index].split(',').next().unwrap_or_default().trim()
    }
}

/// Drops a leading WordNet id (`n` and eight digits) when there is one.
fn readable_name(line: &str) -> String {
    let mut parts = line.splitn(2, char::is_whitespace);
    let first = parts.next().unwrap_or_default();
    let is_wordnet_id = first.len() == 9
        && first.starts_with('n')
        && first[1..].bytes().all(|b| b.is_ascii_digit());
    match parts.next() {
        Some(rest) if is_wordnet_id => rest.trim().to_string(),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_label_styles_give_readable_names() {
        let labels = Labels::parse(
            "n01440764 tench, Tinca tinca\n\ngoldfish\nn0144 not an id\r\nn02085620 Chihuahua\n",
        );
        assert_eq!(labels.len(), 4);
        assert_eq!(labels.name(0), "tench, Tinca tinca");
        assert_eq!(labels.short_name(0), "tench");
        assert_eq!(labels.name(1), "goldfish");
        assert_eq!(labels.name(2), "n0144 not an id");
        assert_eq!(labels.short_name(3), "Chihuahua");
    }
}
