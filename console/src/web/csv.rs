//! CSV downloads of the console's lists. Every field is quoted, and a field that a
//! spreadsheet would take for a formula (`=`, `+`, `-`, `@`, their full-width forms, tab,
//! carriage return or line feed first, after any leading spaces, which spreadsheets skip)
//! is prefixed with `'`; characters that reorder text (bidirectional overrides) are
//! replaced. Names come from pupils' devices.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// What starts a formula in one spreadsheet or another.
const FORMULA: [char; 11] = [
    '=', '+', '-', '@', '\t', '\r', '\n', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
];

/// One field, quoted.
fn field(out: &mut String, text: &str) {
    out.push('"');
    if text
        .trim_start_matches(|c: char| c.is_whitespace() && !FORMULA.contains(&c))
        .starts_with(FORMULA)
    {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(if schoolgate_contract::text::reorders(c) {
            '\u{fffd}'
        } else {
            c
        });
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
        for (text, defused) in [
            (" =1+1", true),
            ("\u{3000}=1+1", true),
            ("\u{ff1d}1+1", true),
            ("  \u{ff20}SUM(A1)", true),
            ("\t=1", true),
            ("a=1", false),
            ("instagram.com", false),
        ] {
            let mut out = String::new();
            field(&mut out, text);
            assert_eq!(out.starts_with("\"'"), defused, "{text:?}");
        }
        let mut out = String::new();
        field(&mut out, "moc.\u{202e}evil.exe");
        assert_eq!(out, "\"moc.\u{fffd}evil.exe\"");
    }
}
