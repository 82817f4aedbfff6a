//! The chart of `docs/benchmarks.md`: horizontal bars, one group per metric, each target's median
//! relative to the reference (= 1.0). Plain SVG text, no external tool.

use std::fmt::Write as _;

use crate::report::{Metric, REFERENCE};

/// Bar colours, one per target in order.
const COLOURS: [&str; 8] =
    ["#2b6cb0", "#718096", "#dd6b20", "#38a169", "#d53f8c", "#805ad5", "#d69e2e", "#319795"];

/// Renders the metrics that have a reference value.
pub fn chart(metrics: &[Metric], targets: &[String]) -> String {
    let metrics: Vec<&Metric> = metrics.iter().filter(|m| m.median(REFERENCE).is_some()).collect();
    let bar = 14.0;
    let label_w = 330.0;
    let plot_w = 420.0;
    let group_h = |m: &Metric| bar * targets.iter().filter(|t| m.median(t).is_some()).count() as f64 + 26.0;
    let height: f64 = 60.0 + metrics.iter().map(|m| group_h(m)).sum::<f64>() + 20.0 * targets.len() as f64;
    let max_ratio = metrics
        .iter()
        .flat_map(|m| targets.iter().filter_map(|t| m.ratio(t, REFERENCE)))
        .fold(1.0_f64, f64::max)
        .min(4.0);
    let x = |r: f64| label_w + plot_w * (r.min(max_ratio) / max_ratio);
    let mut s = String::new();
    let width = label_w + plot_w + 80.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">Median relative to the reference server (1.0 = reference; higher is better unless marked ↓)</text>"#
    );
    let one = x(1.0);
    let mut y = 40.0;
    for m in &metrics {
        let arrow = if m.higher_is_better { "" } else { " ↓" };
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-weight="bold">{} {}{arrow}</text>"#,
            y + 12.0,
            m.scenario,
            esc(&m.metric)
        );
        y += 18.0;
        for (i, t) in targets.iter().enumerate() {
            let Some(r) = m.ratio(t, REFERENCE) else { continue };
            let w = (x(r) - label_w).max(1.0);
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                label_w - 6.0,
                y + 11.0,
                esc(t)
            );
            let _ = writeln!(
                s,
                r#"<rect x="{label_w}" y="{y}" width="{w:.1}" height="{}" fill="{}"/>"#,
                bar - 3.0,
                COLOURS[i % COLOURS.len()]
            );
            let _ = writeln!(s, r#"<text x="{:.1}" y="{}">{r:.2}</text>"#, label_w + w + 4.0, y + 10.0);
            y += bar;
        }
        y += 8.0;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{one:.1}" y1="34" x2="{one:.1}" y2="{y}" stroke="black" stroke-dasharray="3,3"/>"#
    );
    s.push_str("</svg>\n");
    s
}

/// Escapes text for XML.
fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SWITCHBOARD;

    #[test]
    fn renders_bars() {
        let mut m = Metric::new("S1", "deliveries/s <1k>", "/s", true);
        m.push(SWITCHBOARD, 2.0, None);
        m.push(REFERENCE, 4.0, None);
        let svg = chart(&[m], &[SWITCHBOARD.to_owned(), REFERENCE.to_owned()]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("0.50"));
        assert!(svg.contains("&lt;1k&gt;"));
    }
}
