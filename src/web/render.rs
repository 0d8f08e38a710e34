//! Pages from the Handlebars templates in the templates folder, loaded once
//! at start-up in strict mode, so that a misspelt variable fails the tests
//! instead of showing an empty string in class. Handlebars escapes every
//! value; what goes into a page is decided by `pages`.

use std::path::Path;

use anyhow::Context;
use handlebars::Handlebars;
use serde_json::{json, Value};

use super::i18n::{Catalogue, Language};

/// The pages, each a template file `<name>.hbs` using the `layout` partial.
pub const PAGES: [&str; 4] = ["login", "upload", "result", "error"];

/// Templates the pages include: the frame of every page, and the button back
/// to the upload page.
const PARTIALS: [&str; 2] = ["layout", "another_photo"];

/// The templates and the message catalogue.
#[derive(Debug)]
pub struct Renderer {
    handlebars: Handlebars<'static>,
    catalogue: Catalogue,
}

/// The language switch every page shows: a link, or on pages reached by a
/// form post, a small form that posts the same fields again.
#[derive(Debug, Clone)]
pub enum Switch {
    Link(String),
    Form { action: String, uid: String },
}

impl Renderer {
    /// Loads the partials, the pages and `messages.toml` from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Renderer> {
        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.register_escape_fn(escape_html);
        for partial in PARTIALS {
            let path = dir.join(format!("{partial}.hbs"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read template {}", path.display()))?;
            handlebars
                .register_partial(partial, text)
                .with_context(|| format!("template {} is not valid", path.display()))?;
        }
        for page in PAGES {
            let path = dir.join(format!("{page}.hbs"));
            handlebars
                .register_template_file(page, &path)
                .with_context(|| format!("cannot load template {}", path.display()))?;
        }
        let catalogue = Catalogue::load(&dir.join("messages.toml"))?;
        Ok(Renderer { handlebars, catalogue })
    }

    /// The message catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Renders a page. `data` holds the page's own values; the layout's
    /// (`t`, `lang`, `title`, `switch`) are added here.
    pub fn page(
        &self,
        page: &str,
        language: Language,
        title_key: &str,
        switch: &Switch,
        mut data: Value,
    ) -> anyhow::Result<String> {
        let other = language.other();
        let switch = match switch {
            Switch::Link(href) => json!({
                "form": false, "href": href, "action": "", "uid": "", "lang": other.code(),
            }),
            Switch::Form { action, uid } => json!({
                "form": true, "href": "", "action": action, "uid": uid, "lang": other.code(),
            }),
        };
        let messages = self.catalogue.messages(language);
        let title = messages.get(title_key).cloned().unwrap_or_default();
        if let Value::Object(map) = &mut data {
            map.insert("t".into(), json!(messages));
            map.insert("lang".into(), json!(language.code()));
            map.insert("title".into(), json!(title));
            map.insert("switch".into(), switch);
        }
        self.handlebars
            .render(page, &data)
            .with_context(|| format!("cannot render the {page} page"))
    }
}

/// Escapes text for HTML element content and quoted attribute values.
///
/// Handlebars' own escaping also turns `=` and `` ` `` into entities, which
/// is only needed for unquoted attributes; every attribute in our templates
/// is quoted, and links read better without `&#x3D;` in them.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x?a=1&b='2'">"#),
            "&lt;a href=&quot;x?a=1&amp;b=&#x27;2&#x27;&quot;&gt;"
        );
        assert_eq!(escape_html("猫 ok"), "猫 ok");
    }
}
