//! Handlebars templates and static files, both embedded in the binary at compile time.

use handlebars::Handlebars;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "templates/admin/"]
#[include = "*.hbs"]
struct TemplateFiles;

#[derive(RustEmbed)]
#[folder = "static/admin/"]
struct StaticFiles;

pub(crate) struct Templates {
    registry: Handlebars<'static>,
    /// `/admin/static/admin.css?v=<hash>`: a new build gets a new URL, so browsers may
    /// cache the stylesheet for a long time.
    css_url: String,
}

impl Templates {
    pub fn load() -> Self {
        let mut registry = Handlebars::new();
        // Not strict: an absent optional value (no errors, no flash) renders as nothing.
        // `{{...}}` escapes HTML; the templates never use the raw `{{{...}}}` form.
        registry.register_escape_fn(escape_html);
        registry
            .register_embed_templates_with_extension::<TemplateFiles>(".hbs")
            .expect("the embedded admin templates are valid");
        let css = StaticFiles::get("admin.css").expect("static/admin/admin.css is embedded");
        let version = super::security::hex(&Sha256::digest(&css.data)[..6]);
        Self {
            registry,
            css_url: format!("/admin/static/admin.css?v={version}"),
        }
    }

    pub fn css_url(&self) -> &str {
        &self.css_url
    }

    pub fn render(
        &self,
        name: &str,
        data: &impl serde::Serialize,
    ) -> Result<String, handlebars::RenderError> {
        self.registry.render(name, data)
    }
}

/// Escape text for HTML element content and quoted attribute values (every attribute in
/// the templates is quoted). Unlike handlebars' default this leaves `=` alone, so URLs
/// with query strings stay readable in the page source.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

/// A static file: its bytes and content type.
pub(crate) fn static_file(name: &str) -> Option<(std::borrow::Cow<'static, [u8]>, &'static str)> {
    let file = StaticFiles::get(name)?;
    let content_type = match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    Some((file.data, content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x?a=1&b='2'">"#),
            "&lt;a href=&quot;x?a=1&amp;b=&#x27;2&#x27;&quot;&gt;"
        );
    }

    #[test]
    fn every_template_compiles() {
        let t = Templates::load();
        assert!(t.css_url().starts_with("/admin/static/admin.css?v="));
        assert!(TemplateFiles::iter().count() > 5);
    }
}
