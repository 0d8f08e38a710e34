//! The student's language and the message catalogue. Japanese is the
//! default; English when the student picks it (`lang=en` in a link or form)
//! or the browser prefers it. Every text a page shows comes from the
//! templates and `messages.toml`; this module only picks and fills them in.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{ensure, Context};
use serde::Deserialize;

/// A language the pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Ja,
    En,
}

impl Language {
    /// The language's code, as used in `lang=` and `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }

    /// The language a page's switch link leads to.
    pub fn other(self) -> Language {
        match self {
            Language::Ja => Language::En,
            Language::En => Language::Ja,
        }
    }

    /// Reads a `lang=` value by its primary subtag (`en-US` is English);
    /// anything else is `None`.
    pub fn from_code(code: &str) -> Option<Language> {
        let primary = code.trim().split(['-', '_']).next().unwrap_or("");
        match primary.to_ascii_lowercase().as_str() {
            "ja" => Some(Language::Ja),
            "en" => Some(Language::En),
            _ => None,
        }
    }

    /// Picks the language for a request: an explicit choice first, then the
    /// browser's `Accept-Language`, then the configured default.
    pub fn negotiate(
        chosen: Option<&str>,
        accept_language: Option<&str>,
        default: Language,
    ) -> Language {
        chosen
            .and_then(Language::from_code)
            .or_else(|| accept_language.and_then(preferred))
            .unwrap_or(default)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The language among ours that an `Accept-Language` header ranks highest.
///
/// Ranges are weighed by their `q` (1 when absent); equal weights keep the
/// header's order, as browsers list their first choice first.
fn preferred(header: &str) -> Option<Language> {
    let mut best: Option<(f32, Language)> = None;
    for range in header.split(',') {
        let mut parts = range.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let Some(language) = Language::from_code(tag) else { continue };
        if q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, language));
        }
    }
    best.map(|(_, language)| language)
}

/// All page texts in both languages, from `messages.toml`.
#[derive(Debug, Clone)]
pub struct Catalogue {
    ja: BTreeMap<String, String>,
    en: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    ja: BTreeMap<String, String>,
    en: BTreeMap<String, String>,
}

impl Catalogue {
    /// Reads the catalogue and checks that both languages have the same keys.
    pub fn load(path: &Path) -> anyhow::Result<Catalogue> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read message catalogue {}", path.display()))?;
        Catalogue::parse(&text)
            .with_context(|| format!("message catalogue {} is not valid", path.display()))
    }

    /// Parses the catalogue's text.
    pub fn parse(text: &str) -> anyhow::Result<Catalogue> {
        let file: CatalogueFile = toml::from_str(text)?;
        let only_in = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.keys().filter(|k| !b.contains_key(*k)).cloned().collect::<Vec<_>>()
        };
        let (only_ja, only_en) = (only_in(&file.ja, &file.en), only_in(&file.en, &file.ja));
        ensure!(
            only_ja.is_empty() && only_en.is_empty(),
            "[ja] and [en] must have the same keys: only in [ja]: {only_ja:?}; only in [en]: \
             {only_en:?}"
        );
        Ok(Catalogue { ja: file.ja, en: file.en })
    }

    /// Every message of one language, for the templates (`{{t.key}}`).
    pub fn messages(&self, language: Language) -> &BTreeMap<String, String> {
        match language {
            Language::Ja => &self.ja,
            Language::En => &self.en,
        }
    }

    /// Whether the catalogue has a message.
    pub fn has(&self, key: &str) -> bool {
        self.ja.contains_key(key)
    }

    /// One message with its `{name}` placeholders filled in.
    ///
    /// A missing key is a bug caught by the tests, which render every
    /// message; in class it shows the key rather than failing the page.
    pub fn format(&self, language: Language, key: &str, args: &[(&str, &str)]) -> String {
        let Some(template) = self.messages(language).get(key) else {
            log::error!("message catalogue has no key {key:?}");
            return key.to_string();
        };
        let mut text = template.clone();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

/// A byte count as people read it: `20 MiB`, `512 KiB`, `900 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    let (unit, name) = match bytes {
        b if b >= MIB => (MIB, "MiB"),
        b if b >= KIB => (KIB, "KiB"),
        _ => return format!("{bytes} bytes"),
    };
    if bytes % unit == 0 {
        format!("{} {name}", bytes / unit)
    } else {
        format!("{:.1} {name}", bytes as f64 / unit as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_highest_weighted_of_ours() {
        let cases = [
            ("en-US,en;q=0.9,ja;q=0.8", Some(Language::En)),
            ("ja,en-US;q=0.9,en;q=0.8", Some(Language::Ja)),
            ("fr-FR,fr;q=0.9,en;q=0.5,ja;q=0.4", Some(Language::En)),
            ("fr, de", None),
            ("ja;q=0.2, en;q=0.7", Some(Language::En)),
            ("en;q=0, ja", Some(Language::Ja)),
            ("EN-gb", Some(Language::En)),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(preferred(header), expected, "{header:?}");
        }
    }

    #[test]
    fn an_explicit_choice_beats_the_browser() {
        let ja = Language::Ja;
        assert_eq!(Language::negotiate(Some("en"), Some("ja"), ja), Language::En);
        assert_eq!(Language::negotiate(Some("ja"), Some("en"), ja), Language::Ja);
        assert_eq!(Language::negotiate(Some("xx"), Some("en"), ja), Language::En);
        assert_eq!(Language::negotiate(Some("en-US"), Some("ja"), ja), Language::En);
        assert_eq!(Language::negotiate(Some("ja_JP"), Some("en"), ja), Language::Ja);
        assert_eq!(Language::negotiate(Some("english"), None, ja), Language::Ja);
        assert_eq!(Language::negotiate(None, None, ja), Language::Ja);
        assert_eq!(Language::negotiate(None, Some("de"), Language::En), Language::En);
    }

    #[test]
    fn placeholders_are_filled_in() {
        let catalogue =
            Catalogue::parse("[ja]\na = \"{n} 個 {n}\"\n[en]\na = \"{n} items\"\n").unwrap();
        assert_eq!(catalogue.format(Language::Ja, "a", &[("n", "3")]), "3 個 3");
        assert_eq!(catalogue.format(Language::En, "a", &[("n", "3")]), "3 items");
        assert_eq!(catalogue.format(Language::En, "missing", &[]), "missing");
    }

    #[test]
    fn both_languages_must_have_the_same_keys() {
        let err = Catalogue::parse("[ja]\na = \"x\"\nb = \"y\"\n[en]\na = \"x\"\nc = \"z\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("only in [ja]: [\"b\"]") && err.contains("[\"c\"]"), "{err}");
    }

    #[test]
    fn the_shipped_catalogue_has_the_same_keys_in_both_languages() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/messages.toml");
        let catalogue = Catalogue::load(&path).unwrap();
        assert_eq!(
            catalogue.ja.keys().collect::<Vec<_>>(),
            catalogue.en.keys().collect::<Vec<_>>()
        );
        assert!(catalogue.ja.values().chain(catalogue.en.values()).all(|v| !v.trim().is_empty()));
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(human_bytes(20 * 1024 * 1024), "20 MiB");
        assert_eq!(human_bytes(1024 * 1024 + 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_bytes(300 * 1024), "300 KiB");
        assert_eq!(human_bytes(900), "900 bytes");
    }
}
