//! Snippets: a window of a hit's body cut into plain-text segments, the ones that matched the
//! query marked. Computed here from the analysis rules, the same for both backends, and safe to
//! render: segments are text, never markup.

use serde::Serialize;

use crate::analysis;
use crate::query::Clause;

/// Longest snippet, in characters (bodies up to this are shown whole).
pub const SNIPPET_CHARS: usize = 240;
/// Characters kept before the first match when a body is cut.
const LEAD_CHARS: usize = 60;

/// A piece of a snippet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub text: String,
    /// Whether this piece matched the query.
    pub highlight: bool,
}

/// The snippet of `body` for `clauses`: at most [`SNIPPET_CHARS`] characters around the first
/// match ("…" marks a cut), in segments.
pub fn snippet(body: &str, clauses: &[Clause]) -> Vec<Segment> {
    let ranges = matches(body, clauses);
    let (start, end) = window(body, ranges.first().map(|r| r.0));
    let mut out = Vec::new();
    let mut push = |text: &str, highlight: bool| {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(Segment {
                text: t,
                highlight: h,
            }) if *h == highlight => t.push_str(text),
            _ => out.push(Segment {
                text: text.to_owned(),
                highlight,
            }),
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for (s, e) in ranges {
        if e <= at || s >= end {
            continue;
        }
        let (s, e) = (s.max(at), e.min(end));
        push(&body[at..s], false);
        push(&body[s..e], true);
        at = e;
    }
    push(&body[at..end], false);
    if end < body.len() {
        push("…", false);
    }
    out
}

/// Byte ranges of `body` that matched, in order, not overlapping.
fn matches(body: &str, clauses: &[Clause]) -> Vec<(usize, usize)> {
    let terms = analysis::terms(body);
    let mut hit = vec![false; terms.len()];
    for clause in clauses {
        match clause {
            Clause::Word(w) => {
                for (i, (span, t)) in terms.iter().enumerate() {
                    if t == w || (!span.cjk && t.starts_with(w.as_str()) && prefixable(w)) {
                        hit[i] = true;
                    }
                }
            }
            Clause::Prefix(p) => {
                for (i, (span, t)) in terms.iter().enumerate() {
                    if !span.cjk && t.starts_with(p.as_str()) {
                        hit[i] = true;
                    }
                }
            }
            Clause::Phrase(words) if !words.is_empty() => {
                for i in 0..terms.len().saturating_sub(words.len() - 1) {
                    if words.iter().enumerate().all(|(k, w)| terms[i + k].1 == *w) {
                        hit[i..i + words.len()].iter_mut().for_each(|h| *h = true);
                    }
                }
            }
            Clause::Phrase(_) => {}
        }
    }
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (i, (span, _)) in terms.iter().enumerate() {
        if !hit[i] {
            continue;
        }
        // Adjacent CJK characters of one match read as one highlight.
        match ranges.last_mut() {
            Some(last)
                if span.cjk
                    && i > 0
                    && hit[i - 1]
                    && terms[i - 1].0.cjk
                    && last.1 == span.start =>
            {
                last.1 = span.end;
            }
            _ => ranges.push((span.start, span.end)),
        }
    }
    ranges
}

/// Whether a word clause also matches the words it starts (as the prefix field does).
fn prefixable(word: &str) -> bool {
    (analysis::MIN_PREFIX..=analysis::MAX_PREFIX).contains(&word.chars().count())
}

/// The byte range of the snippet: the whole body if short, else [`SNIPPET_CHARS`] characters
/// starting a little before `first` (a match's start).
fn window(body: &str, first: Option<usize>) -> (usize, usize) {
    let chars: Vec<usize> = body.char_indices().map(|(i, _)| i).collect();
    if chars.len() <= SNIPPET_CHARS {
        return (0, body.len());
    }
    let first_char = first.map_or(0, |b| chars.partition_point(|&i| i < b));
    let start_char = first_char
        .saturating_sub(LEAD_CHARS)
        .min(chars.len() - SNIPPET_CHARS);
    let end_char = start_char + SNIPPET_CHARS;
    let end = chars.get(end_char).copied().unwrap_or(body.len());
    (chars[start_char], end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;

    fn marked(body: &str, q: &str) -> String {
        let clauses = parse(q).expect("q").clauses;
        snippet(body, &clauses)
            .into_iter()
            .map(|s| {
                if s.highlight {
                    format!("[{}]", s.text)
                } else {
                    s.text
                }
            })
            .collect()
    }

    #[test]
    fn words_prefixes_phrases_and_cjk_are_marked() {
        assert_eq!(
            marked("The Configuration is done", "conf"),
            "The [Configuration] is done"
        );
        assert_eq!(marked("see report.png now", "png"), "see report.[png] now");
        assert_eq!(marked("Café crème", "cafe"), "[Café] crème");
        assert_eq!(
            marked("the plan and the planet", "\"the plan\""),
            "[the] [plan] and the planet"
        );
        assert_eq!(
            marked("東京タワーに行きました", "東京"),
            "[東京]タワーに行きました"
        );
        assert_eq!(marked("<b>bold</b>", "bold"), "<b>[bold]</b>");
    }

    #[test]
    fn long_bodies_are_cut_around_the_first_match() {
        let body = format!("{} needle {}", "x ".repeat(200), "y ".repeat(200));
        let s = marked(&body, "needle");
        assert!(s.starts_with('…') && s.ends_with('…'), "{s}");
        assert!(s.contains("[needle]"));
        assert!(s.chars().count() <= SNIPPET_CHARS + 2 + 2);
    }
}
