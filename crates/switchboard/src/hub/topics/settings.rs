//! What the hub knows of a topic from its name: the settings of the first pattern it matches
//! (history, presence, acknowledgements), and the parameters the pattern takes from it.

use std::sync::Arc;

use switchboard_core::HistoryOptions;

/// The parts of a topic's options that do not depend on who asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopicSettings {
    pub(crate) history: HistoryOptions,
    pub(crate) presence: bool,
    pub(crate) acked: bool,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A topic pattern: `/`-separated literals and `{param}`s.
#[derive(Clone, Debug)]
pub(crate) struct Pattern(Arc<[Segment]>);

impl Pattern {
    pub(crate) fn new(pattern: &str) -> Self {
        Self(
            pattern
                .split('/')
                .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                })
                .collect(),
        )
    }

    /// The parameters, if `topic` matches the pattern.
    pub(crate) fn matches(&self, topic: &str) -> Option<TopicParams> {
        let mut params = Vec::new();
        let mut parts = topic.split('/');
        for segment in self.0.iter() {
            let part = parts.next()?;
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), part.to_owned())),
            }
        }
        parts.next().is_none().then(|| TopicParams(Arc::new(params)))
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match segment {
                Segment::Literal(l) => f.write_str(l)?,
                Segment::Param(name) => write!(f, "{{{name}}}")?,
            }
        }
        Ok(())
    }
}

/// The parameters a topic name matched in its pattern (`chat/{room}` on `chat/lobby`:
/// `room` = `lobby`). An extractor in topic hooks; empty elsewhere.
#[derive(Clone, Debug, Default)]
pub struct TopicParams(Arc<Vec<(String, String)>>);

impl TopicParams {
    /// A parameter's value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The settings of every namespace's topic patterns, in order (the first match wins): for
/// publications and joins made by the server, which come from no namespace.
#[derive(Default)]
pub(crate) struct SettingsTable(Vec<(Pattern, TopicSettings)>);

impl SettingsTable {
    pub(crate) fn new(patterns: Vec<(Pattern, TopicSettings)>) -> Self {
        Self(patterns)
    }

    /// The settings of the first pattern `topic` matches (defaults if none).
    pub(crate) fn of(&self, topic: &str) -> TopicSettings {
        self.class_of(topic).map(|(_, s)| s).unwrap_or_default()
    }

    /// The first pattern `topic` matches (its *class*), as written, and its settings.
    pub(crate) fn class_of(&self, topic: &str) -> Option<(String, TopicSettings)> {
        self.0.iter().find(|(p, _)| p.matches(topic).is_some()).map(|(p, s)| (p.to_string(), *s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let pattern = Pattern::new("todo/{list}/{item}");
        let p = pattern.matches("todo/l1/i2").unwrap();
        assert_eq!((p.get("list"), p.get("item")), (Some("l1"), Some("i2")));
        assert!(pattern.matches("todo/l1").is_none());
        assert!(pattern.matches("todo/l1/i2/x").is_none());
        assert!(pattern.matches("chat/l1/i2").is_none());
        assert_eq!(pattern.to_string(), "todo/{list}/{item}");
    }
}
