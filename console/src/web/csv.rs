//! CSV downloads of the console's lists. Every field is quoted, and a field that a
//! spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab, carriage return first) is
//! prefixed with `'`: names come from pupils' devices.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// One field, quoted.
fn field(out: &mut String, text: &str) {
    out.push('"');
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// A CSV document: `header`, then `rows`, lines ending CRLF (RFC 4180).
pub fn document<R, F>(header: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = F>,
    F: IntoIterator<Item = String>,
{
    let mut out = String::new();
    let mut line = |fields: &mut dyn Iterator<Item = String>| {
        for (i, f) in fields.enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, &f);
        }
        out.push_str("\r\n");
    };
    line(&mut header.iter().map(|h| (*h).to_owned()));
    for r in rows {
        line(&mut r.into_iter());
    }
    out
}

/// `text` as a download named `file`.
pub fn download(file: &str, text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        text,
    )
        .into_response()
}

/// An optional text as a field.
pub fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        let doc = document(
            &["name", "n"],
            [
                vec!["=HYPERLINK(\"http://x\")".to_owned(), "3".to_owned()],
                vec!["a,b\nc".to_owned(), "-1".to_owned()],
            ],
        );
        assert_eq!(
            doc,
            "\"name\",\"n\"\r\n\"'=HYPERLINK(\"\"http://x\"\")\",\"3\"\r\n\"a,b\nc\",\"'-1\"\r\n"
        );
    }
}
