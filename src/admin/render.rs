//! Handlebars templates and static files, both embedded in the binary at compile time.

use handlebars::Handlebars;
use rust_embed::RustEmbed;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "templates/admin/"]
#[include = "*.hbs"]
struct TemplateFiles;

#[derive(RustEmbed)]
#[folder = "static/admin/"]
struct StaticFiles;

/// The logged-in user, as the layout shows them.
#[derive(Serialize)]
pub(crate) struct LayoutUser<'a> {
    pub id: i64,
    pub username: &'a str,
    pub is_superuser: bool,
}

/// A flash message above the page.
#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub level: &'a str,
    pub text: &'a str,
}

/// What the layout (`_head.hbs`) shows around every page.
#[derive(Serialize)]
pub(crate) struct Layout<'a> {
    pub title: &'a str,
    pub user: Option<LayoutUser<'a>>,
    pub csrf_token: &'a str,
    pub css_url: &'a str,
    pub environment: &'static str,
    pub messages: Vec<Message<'a>>,
}

/// The values a page's template sees: the layout's, next to its own.
#[derive(Serialize)]
struct PageData<'a, T> {
    #[serde(flatten)]
    layout: &'a Layout<'a>,
    #[serde(flatten)]
    data: &'a T,
}

pub(crate) struct Templates {
    registry: Handlebars<'static>,
    /// `/admin/static/admin.css?v=<hash>`: a new build gets a new URL, so browsers may
    /// cache the stylesheet for a long time.
    css_url: String,
}

impl Templates {
    pub fn load() -> Self {
        let mut registry = Handlebars::new();
        // Strict: a value a template prints but the data lacks is an error, not "".
        // `{{...}}` escapes HTML (handlebars' own escaping: & < > " ' ` =); the templates
        // never use the raw `{{{...}}}` form.
        registry.set_strict_mode(true);
        registry
            .register_embed_templates_with_extension::<TemplateFiles>(".hbs")
            .expect("the embedded admin templates are valid");
        let css = StaticFiles::get("admin.css").expect("static/admin/admin.css is embedded");
        let version = hex::encode(&Sha256::digest(&css.data)[..6]);
        Self {
            registry,
            css_url: format!("/admin/static/admin.css?v={version}"),
        }
    }

    pub fn css_url(&self) -> &str {
        &self.css_url
    }

    #[cfg(test)]
    pub fn render(
        &self,
        name: &str,
        data: &impl serde::Serialize,
    ) -> Result<String, handlebars::RenderError> {
        self.registry.render(name, data)
    }

    /// A whole page: the layout's head (`_head.hbs`), the page's template, the foot.
    ///
    /// The layout is put around the page here rather than included by each template as a
    /// partial (`{{> _head}}`): handlebars 6.4 `src/partial.rs` deep-copies the whole
    /// context for every partial it expands, and three copies of a 25-row list were most
    /// of an admin page's CPU (scripts/bench.sh admin). The head is rendered from the
    /// layout's few values alone; partials inside pages are given just their part
    /// (`{{> _paging paging}}`), or a literal context and their hash arguments
    /// (`{{> _errors false list=… id=…}}`: with no context it would be the page's, copied).
    pub fn render_page(
        &self,
        name: &str,
        layout: &Layout<'_>,
        data: &impl serde::Serialize,
    ) -> Result<String, handlebars::RenderError> {
        let mut html = self.registry.render("_head", layout)?;
        html.push_str(&self.registry.render(name, &PageData { layout, data })?);
        html.push_str(&self.registry.render("_foot", &())?);
        Ok(html)
    }
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
    fn a_page_is_the_layout_around_its_template() {
        let t = Templates::load();
        let layout = Layout {
            title: "<Users> & more",
            user: Some(LayoutUser {
                id: 1,
                username: "ann",
                is_superuser: true,
            }),
            csrf_token: "tok",
            css_url: "/c.css",
            environment: "local",
            messages: vec![Message {
                level: "success",
                text: "Saved <b>",
            }],
        };
        let data = serde_json::json!({"heading": "H", "detail": "D", "status": 404});
        let html = t.render_page("error", &layout, &data).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(html.trim_end().ends_with("</html>"), "{html}");
        assert!(
            html.contains("<title>&lt;Users&gt; &amp; more</title>"),
            "{html}"
        );
        assert!(html.contains("<strong>ann</strong>"), "{html}");
        assert!(html.contains("Saved &lt;b&gt;"), "{html}");
        // The page's own part sits inside <main>, between the head and the foot.
        let main = html.find("<main").unwrap();
        let heading = html.find(">H<").expect("the page's heading");
        let foot = html.find("</main>").unwrap();
        assert!(main < heading && heading < foot, "{html}");
        // The page's template sees the layout's values too (forms need csrf_token).
        assert!(
            t.render_page(
                "login",
                &layout,
                &serde_json::json!({"errors": {}, "username": "", "next": ""})
            )
            .unwrap()
            .contains(r#"value="tok""#)
        );
    }

    #[test]
    fn html_is_escaped_and_missing_values_are_errors() {
        let t = Templates::load();
        let data = |heading: &str| {
            serde_json::json!({
                "title": "t", "user": null, "csrf_token": "", "css_url": "/c",
                "environment": "local", "messages": [], "heading": heading,
                "detail": "d", "status": 400,
            })
        };
        let html = t
            .render("error", &data(r#"<a href="x?a=1&b='2'">"#))
            .unwrap();
        assert!(
            html.contains("&lt;a href&#x3D;&quot;x?a&#x3D;1&amp;b&#x3D;&#x27;2&#x27;&quot;&gt;"),
            "{html}"
        );
        let mut incomplete = data("h");
        incomplete.as_object_mut().unwrap().remove("detail");
        assert!(t.render("error", &incomplete).is_err());
    }

    #[test]
    fn every_template_compiles() {
        let t = Templates::load();
        assert!(t.css_url().starts_with("/admin/static/admin.css?v="));
        assert!(TemplateFiles::iter().count() > 5);
    }
}
