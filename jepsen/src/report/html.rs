//! The few HTML pieces both pages share: escaping, the page shell, tables, number formats.
//!
//! Pages are self-contained files (inline CSS and SVG, no scripts, nothing fetched) so a
//! report can be archived by CI or opened from a laptop years later.

use std::fmt::Write;

/// Escapes text for element content and double-quoted attributes.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a relative path for an `href`, keeping `/`.
pub(crate) fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.valid{background:#e6f4ea;border:2px solid #2e7d32;padding:.6em 1em}.invalid{background:#fdecea;border:2px solid #c62828;padding:.6em 1em}\
code,pre{font-family:ui-monospace,monospace;font-size:.85em}pre{background:#f7f7f7;padding:.5em;overflow-x:auto}\
svg{display:block;margin:.5em 0 1.5em;max-width:100%;height:auto}li{margin:.2em 0}";

/// A whole page around `body` (already HTML).
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// A table; `rows` cells are HTML already. Cells starting with a digit are right-aligned.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let numeric = cell.starts_with(|c: char| c.is_ascii_digit());
            let _ = write!(out, "<td{}>{cell}</td>", if numeric { " class=\"num\"" } else { "" });
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Nanoseconds as milliseconds with sensible precision.
pub(crate) fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 1.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.3} ms")
    }
}

pub(crate) fn opt_ms(ns: Option<u64>, none: &str) -> String {
    ns.map_or_else(|| none.to_string(), ms)
}

/// Nanoseconds since the run started, as seconds.
pub(crate) fn secs(ns: u64) -> String {
    format!("{:.2} s", ns as f64 / 1e9)
}
