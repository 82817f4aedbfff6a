//! Results: per-round values, medians, the one-line JSON per scenario and metric, and the
//! Markdown tables of `docs/benchmarks.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The target names, in the order of the tables.
pub const SWITCHBOARD: &str = "switchboard";
/// The reference floor server.
pub const REFERENCE: &str = "reference";

/// One measured quantity of one scenario, for every target, over the rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Metric {
    /// `S1` … `S7`.
    pub scenario: String,
    /// What is measured, e.g. `deliveries/s, 1000 subscribers, burst 1`.
    pub metric: String,
    /// Unit of the values (`/s`, `µs`, `bytes`…).
    pub unit: String,
    /// Whether more is better (for the ratios' reading).
    pub higher_is_better: bool,
    /// Target → value of each round.
    pub values: BTreeMap<String, Vec<f64>>,
    /// Target → server CPU microseconds per operation, each round.
    pub cpu_us_per_op: BTreeMap<String, Vec<f64>>,
    /// Further columns of the table, in order: (heading, target → each round's value).
    #[serde(default)]
    pub details: Vec<(String, BTreeMap<String, Vec<f64>>)>,
    /// Target → why there is no value (`n/a`, `not installed: …`, `failed: …`).
    pub missing: BTreeMap<String, String>,
    /// Goals with their verdicts.
    pub goals: Vec<Goal>,
    /// Free text for the report (what was run, what a figure means).
    pub note: String,
}

/// A goal of the issue and whether it is met.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Goal {
    /// The goal, e.g. `≥ 0.85× reference`.
    pub text: String,
    /// Met, missed, or not measurable (`None`).
    pub met: Option<bool>,
    /// The figures behind the verdict.
    pub detail: String,
}

/// Median of a set of values (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

impl Metric {
    /// A metric with no values yet.
    pub fn new(scenario: &str, metric: &str, unit: &str, higher_is_better: bool) -> Self {
        Self {
            scenario: scenario.to_owned(),
            metric: metric.to_owned(),
            unit: unit.to_owned(),
            higher_is_better,
            ..Self::default()
        }
    }

    /// Records one round's value (and CPU per operation) for a target.
    pub fn push(&mut self, target: &str, value: f64, cpu_us_per_op: Option<f64>) {
        self.values.entry(target.to_owned()).or_default().push(value);
        if let Some(c) = cpu_us_per_op {
            self.cpu_us_per_op.entry(target.to_owned()).or_default().push(c);
        }
    }

    /// Records one round's value of a further column (`heading`) for a target.
    pub fn push_detail(&mut self, heading: &str, target: &str, value: f64) {
        let at = match self.details.iter().position(|(h, _)| h == heading) {
            Some(at) => at,
            None => {
                self.details.push((heading.to_owned(), BTreeMap::new()));
                self.details.len() - 1
            }
        };
        self.details[at].1.entry(target.to_owned()).or_default().push(value);
    }

    /// Says why a target has no value (kept only if it has none).
    pub fn mark(&mut self, target: &str, why: &str) {
        self.missing.entry(target.to_owned()).or_insert_with(|| why.to_owned());
    }

    /// The median of a target.
    pub fn median(&self, target: &str) -> Option<f64> {
        self.values.get(target).and_then(|v| median(v))
    }

    /// `target / reference` of the medians.
    pub fn ratio(&self, target: &str, reference: &str) -> Option<f64> {
        match (self.median(target), self.median(reference)) {
            (Some(a), Some(b)) if b != 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Adds a goal "target ≥ factor × other" (for higher-is-better metrics).
    pub fn goal_ratio(&mut self, target: &str, factor: f64, other: &str) {
        let text = format!("{target} ≥ {factor}× {other}");
        let (met, detail) = match (self.median(target), self.median(other)) {
            (Some(a), Some(b)) if b > 0.0 => (Some(a >= factor * b), format!("{:.2}×", a / b)),
            _ => (None, format!("{other}: {}", self.why(other))),
        };
        self.goals.push(Goal { text, met, detail });
    }

    /// Why a target has no median.
    pub fn why(&self, target: &str) -> String {
        self.missing.get(target).cloned().unwrap_or_else(|| "no value".to_owned())
    }

    /// Median, or why there is none, as JSON.
    fn json_value(&self, target: &str) -> Value {
        match self.median(target) {
            Some(v) => json!(round3(v)),
            None => json!(self.why(target)),
        }
    }

    /// The one-line JSON of the issue:
    /// `{"scenario", "metric", "switchboard", "reference", "ratio", "peers": {...}}`.
    pub fn json_line(&self, peers: &[String]) -> String {
        let ratio = self.ratio(SWITCHBOARD, REFERENCE).map_or(Value::Null, |r| json!(round3(r)));
        let peers: serde_json::Map<String, Value> =
            peers.iter().map(|p| (p.clone(), self.json_value(p))).collect();
        json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "unit": self.unit,
            "switchboard": self.json_value(SWITCHBOARD),
            "reference": self.json_value(REFERENCE),
            "ratio": ratio,
            "peers": peers,
        })
        .to_string()
    }

    /// A Markdown table: one row per target.
    pub fn markdown(&self, targets: &[String]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "**{} — {}** ({})\n", self.scenario, self.metric, self.unit);
        s.push_str("| target | median | min – max (rounds) | × reference | server CPU-µs/op |");
        for (heading, _) in &self.details {
            let _ = write!(s, " {heading} |");
        }
        s.push_str("\n|---|---:|---:|---:|---:|");
        s.push_str(&"---:|".repeat(self.details.len()));
        s.push('\n');
        for t in targets {
            match self.values.get(t).filter(|v| !v.is_empty()) {
                Some(v) => {
                    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let ratio = self.ratio(t, REFERENCE).map_or("—".to_owned(), |r| format!("{r:.2}"));
                    let cpu = self
                        .cpu_us_per_op
                        .get(t)
                        .and_then(|c| median(c))
                        .map_or("—".to_owned(), |c| format!("{c:.2}"));
                    let _ = write!(
                        s,
                        "| {t} | {} | {} – {} ({}) | {ratio} | {cpu} |",
                        human(median(v).unwrap_or(0.0)),
                        human(min),
                        human(max),
                        v.len()
                    );
                    for (_, values) in &self.details {
                        let d = values.get(t).and_then(|d| median(d)).map_or("—".to_owned(), human);
                        let _ = write!(s, " {d} |");
                    }
                    s.push('\n');
                }
                None => {
                    let _ = writeln!(s, "| {t} | {} | | | |{}", self.why(t), " |".repeat(self.details.len()));
                }
            }
        }
        if !self.goals.is_empty() {
            s.push('\n');
            for g in &self.goals {
                let mark = match g.met {
                    Some(true) => "✓",
                    Some(false) => "✗",
                    None => "?",
                };
                let _ = writeln!(s, "- {mark} goal: {} — {}", g.text, g.detail);
            }
        }
        if !self.note.is_empty() {
            let _ = writeln!(s, "\n{}", self.note);
        }
        s
    }
}

/// Rounds to 3 decimals (JSON output).
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A number for people: thousands separated, at most 3 significant decimals for small ones.
pub fn human(v: f64) -> String {
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let digits = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_the_issue_fields() {
        let mut m = Metric::new("S1", "deliveries/s, 1000 subscribers, burst 1", "/s", true);
        for v in [90.0, 100.0, 110.0] {
            m.push(SWITCHBOARD, v, Some(1.5));
        }
        for v in [100.0, 100.0, 100.0] {
            m.push(REFERENCE, v * 1.25, None);
        }
        m.push("ws", 40.0, None);
        m.mark("bun", "not installed: no manifest line");
        let line = m.json_line(&["ws".to_owned(), "bun".to_owned()]);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["scenario"], "S1");
        assert_eq!(v["switchboard"], 100.0);
        assert_eq!(v["reference"], 125.0);
        assert_eq!(v["ratio"], 0.8);
        assert_eq!(v["peers"]["ws"], 40.0);
        assert_eq!(v["peers"]["bun"], "not installed: no manifest line");
    }

    #[test]
    fn medians_and_goals() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut m = Metric::new("S2", "calls/s", "/s", true);
        m.push(SWITCHBOARD, 90.0, None);
        m.push(REFERENCE, 100.0, None);
        m.goal_ratio(SWITCHBOARD, 0.85, REFERENCE);
        m.goal_ratio(SWITCHBOARD, 3.0, "socketio");
        assert_eq!(m.goals[0].met, Some(true));
        assert_eq!(m.goals[1].met, None);
        assert!(m.markdown(&[SWITCHBOARD.to_owned(), REFERENCE.to_owned()]).contains("✓ goal"));
        assert_eq!(human(1234567.0), "1,234,567");
    }

    #[test]
    fn details_are_further_columns_of_medians() {
        let mut m = Metric::new("S1", "deliveries/s", "/s", true);
        for (v, kernel) in [(90.0, 0.9), (100.0, 0.7), (110.0, 0.8)] {
            m.push(SWITCHBOARD, v, Some(1.0));
            m.push_detail("in the kernel", SWITCHBOARD, kernel);
            m.push_detail("busy %", SWITCHBOARD, 90.0);
        }
        m.mark("bun", "not installed");
        let table = m.markdown(&[SWITCHBOARD.to_owned(), "bun".to_owned()]);
        let lines: Vec<&str> = table.lines().filter(|l| l.starts_with('|')).collect();
        assert!(lines[0].ends_with("| server CPU-µs/op | in the kernel | busy % |"), "{}", lines[0]);
        assert_eq!(lines[1].matches("---").count(), 7);
        assert!(lines[2].ends_with("| 1.00 | 0.80 | 90.0 |"), "{}", lines[2]);
        // Every row has as many cells as the heading.
        assert!(lines.iter().all(|l| l.matches('|').count() == 8), "{table}");
    }
}
