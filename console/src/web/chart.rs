//! Charts drawn on the server as SVG, put into pages as they are: no script, no inline
//! style (the CSP allows neither), text escaped like the rest of the page.

use std::fmt::Write;

/// Escapes text for SVG (XML) content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

/// A column chart of `values`, one column per bucket, with a label under every `every`-th
/// (`labels[i]` for bucket `i`) and each column's label and value as its tooltip.
pub fn columns(title: &str, values: &[i64], labels: &[String], every: usize) -> String {
    let mut svg = String::new();
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len().max(1);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let w = plot_w / n as f64;
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    let _ = write!(
        svg,
        r##"<text x="{x}" y="12" text-anchor="end" font-size="11">{max}</text><text x="{x}" y="{y0}" text-anchor="end" font-size="11">0</text><line x1="{LEFT}" y1="{plot_h}" x2="{WIDTH}" y2="{plot_h}" stroke="#999"/>"##,
        x = LEFT - 4.0,
        y0 = plot_h,
    );
    for (i, v) in values.iter().enumerate() {
        let h = plot_h * (*v as f64) / (max as f64);
        let x = LEFT + w * i as f64;
        let label = labels.get(i).map_or("", String::as_str);
        if *v > 0 {
            let _ = write!(
                svg,
                r##"<rect x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{h:.2}" fill="#1f3a5f"><title>{l}: {v}</title></rect>"##,
                y = plot_h - h,
                bw = (w * 0.85).max(0.5),
                l = escape(label),
            );
        }
        if every > 0 && i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.2}" y="{ty}" font-size="11">{l}</text>"#,
                ty = HEIGHT - 6.0,
                l = escape(label),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A bar chart, one labelled bar per row, longest first as given.
pub fn bars(title: &str, rows: &[(String, i64)]) -> String {
    let mut svg = String::new();
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let row_h = 22.0;
    let label_w = 220.0;
    let height = row_h * rows.len().max(1) as f64 + 4.0;
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = row_h * i as f64 + 2.0;
        let w = (WIDTH - label_w - 60.0) * (*v as f64) / (max as f64);
        let _ = write!(
            svg,
            r##"<text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="12">{l}</text><rect x="{label_w}" y="{y:.1}" width="{w:.2}" height="{bh}" fill="#c62828"/><text x="{vx:.1}" y="{ty:.1}" font-size="12">{v}</text>"##,
            tx = label_w - 6.0,
            ty = y + 14.0,
            bh = row_h - 6.0,
            vx = label_w + w + 4.0,
            l = escape(label),
        );
    }
    if rows.is_empty() {
        svg.push_str(r#"<text x="4" y="16" font-size="12">None.</text>"#);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_columns_scaled() {
        let svg = bars(
            "By technique",
            &[("<script>x</script>".into(), 4), ("tor".into(), 2)],
        );
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;"));
        let labels: Vec<String> = (0..4).map(|i| format!("h{i}")).collect();
        let svg = columns("Blocks per hour", &[0, 10, 5, 0], &labels, 2);
        // Zero columns are not drawn; the tallest fills the plot.
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(r#"height="178.00""#), "{svg}");
        assert!(svg.contains(r#"height="89.00""#));
        assert!(svg.contains(">h0</text>") && svg.contains(">h2</text>"));
        assert!(!svg.contains(">h1</text>"));
        assert!(svg.contains("<title>h1: 10</title>"));
    }
}
