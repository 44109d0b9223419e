//! The embedded bundle.

use vigil_runtime::web::{WebPage, WebPages};

/// Vite is told to write fixed names (see `web/vite.config.ts`), so the list is known here.
const INDEX_HTML: &[u8] = include_bytes!("../dist/index.html");
const CONSOLE_JS: &[u8] = include_bytes!("../dist/assets/console.js");
const CONSOLE_CSS: &[u8] = include_bytes!("../dist/assets/console.css");

/// The console's files, by request path.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsolePages;

impl WebPages for ConsolePages {
    fn page(&self, path: &str) -> Option<WebPage> {
        let page = |body, content_type| WebPage {
            body,
            content_type,
            // Fixed names: the browser revalidates rather than keeping a stale bundle after an upgrade.
            immutable: false,
        };
        match path {
            "/assets/console.js" => Some(page(CONSOLE_JS, "text/javascript; charset=utf-8")),
            "/assets/console.css" => Some(page(CONSOLE_CSS, "text/css; charset=utf-8")),
            _ if path.starts_with("/assets/") => None,
            _ => Some(page(INDEX_HTML, "text/html; charset=utf-8")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_links_get_the_page_and_unknown_assets_do_not() {
        let pages = ConsolePages;
        for path in ["/", "/sessions/0190f0e2-0000-7000-8000-000000000000", "/terminations"] {
            let page = pages.page(path).expect("the page");
            assert!(page.content_type.starts_with("text/html"));
            assert!(std::str::from_utf8(page.body).unwrap().contains("/assets/console.js"));
        }
        assert!(pages.page("/assets/console.js").is_some());
        assert!(pages.page("/assets/console.css").is_some());
        assert!(pages.page("/assets/other.js").is_none());
    }
}
