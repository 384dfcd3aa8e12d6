//! The search language of `GET /v1/search/messages?q=…`, parsed into a [`ParsedQuery`]:
//!
//! - `word`: the word, or any word it starts ("conf" finds "configuration"); a "word" with
//!   punctuation or CJK characters inside ("report.png", "東京") is searched as a phrase of its
//!   terms;
//! - `"a phrase"`: these terms next to each other, in this order;
//! - `prefix*`: any word starting so (at least [`MIN_PREFIX`], at most [`MAX_PREFIX`]
//!   characters);
//! - operators: `in:<room name or id>`, `from:<username>`, `before:YYYY-MM-DD`,
//!   `after:YYYY-MM-DD`, `has:link`; a value may be quoted (`in:"team chat"`). Several `in:` or
//!   `from:` widen the search to any of them; `before:`/`after:` exclude the day named.
//!
//! Every clause must match (AND). An unknown operator (`foo:bar`) or a malformed value is a
//! [`QueryError`] naming it; a word whose "operator" is a URL scheme (`http://…`) is a word.

use chrono::NaiveDate;

use crate::analysis::{self, MAX_PREFIX, MIN_PREFIX};

/// Longest `q`, in bytes.
pub const MAX_QUERY_BYTES: usize = 1000;
/// Most text clauses and operators in one query.
pub const MAX_CLAUSES: usize = 32;

/// What text a hit must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// One normalized word: the word itself or a word it starts.
    Word(String),
    /// Normalized terms, adjacent and in order (one term: exactly that term).
    Phrase(Vec<String>),
    /// A normalized word start.
    Prefix(String),
}

/// A parsed `q`: text clauses and the operators' filters, unresolved (names, not ids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    pub clauses: Vec<Clause>,
    /// `in:` values: room names or ids.
    pub rooms: Vec<String>,
    /// `from:` values: usernames (without a leading `@`).
    pub senders: Vec<String>,
    /// `before:`: messages sent before this day (UTC).
    pub before: Option<NaiveDate>,
    /// `after:`: messages sent after this day (UTC).
    pub after: Option<NaiveDate>,
    /// `has:link`.
    pub has_link: bool,
}

impl ParsedQuery {
    /// Whether the query asks for nothing at all (no text, no operator).
    pub fn is_empty(&self) -> bool {
        self.clauses.is_empty()
            && self.rooms.is_empty()
            && self.senders.is_empty()
            && self.before.is_none()
            && self.after.is_none()
            && !self.has_link
    }
}

/// Why a `q` cannot be searched: a 400 with this code and message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError {
        code,
        message: message.into(),
    }
}

const OPERATORS: &str = "in:, from:, before:, after:, has:link";

/// Parses `q` (see the module's language).
pub fn parse(q: &str) -> Result<ParsedQuery, QueryError> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(err(
            "query_too_long",
            format!("q is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    if q.contains('\0') {
        return Err(err("invalid_query", "q must not contain a NUL character"));
    }
    let mut parsed = ParsedQuery::default();
    let mut count = 0usize;
    for item in lex(q)? {
        count += 1;
        if count > MAX_CLAUSES {
            return Err(err(
                "too_many_terms",
                format!("q has more than {MAX_CLAUSES} words, phrases and operators"),
            ));
        }
        match item {
            Item::Phrase(text) => {
                let terms = terms_of(&text);
                if !terms.is_empty() {
                    parsed.clauses.push(Clause::Phrase(terms));
                }
            }
            Item::Word(word) => {
                if let Some(stem) = word.strip_suffix('*') {
                    parsed.clauses.push(prefix(stem)?);
                    continue;
                }
                if let Some(clause) = word_clause(&word) {
                    parsed.clauses.push(clause);
                }
            }
            Item::Operator(name, value) => operator(&mut parsed, &name, &value)?,
        }
    }
    Ok(parsed)
}

fn terms_of(text: &str) -> Vec<String> {
    analysis::terms(text).into_iter().map(|(_, t)| t).collect()
}

/// A bare word: one plain word matches as a word or word start, anything else as a phrase.
fn word_clause(word: &str) -> Option<Clause> {
    let spans = analysis::spans(word);
    match spans.as_slice() {
        [] => None,
        [one] if !one.cjk => Some(Clause::Word(analysis::normalize(&word[one.start..one.end]))),
        _ => Some(Clause::Phrase(terms_of(word))),
    }
}

fn prefix(stem: &str) -> Result<Clause, QueryError> {
    let spans = analysis::spans(stem);
    let [one] = spans.as_slice() else {
        return Err(err(
            "invalid_prefix",
            format!("`{stem}*`: a prefix must be one word, without punctuation or CJK characters"),
        ));
    };
    if one.cjk || one.start != 0 || one.end != stem.len() {
        return Err(err(
            "invalid_prefix",
            format!("`{stem}*`: a prefix must be one word, without punctuation or CJK characters"),
        ));
    }
    let chars = stem.chars().count();
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&chars) {
        return Err(err(
            "invalid_prefix",
            format!("`{stem}*`: a prefix has {MIN_PREFIX} to {MAX_PREFIX} characters"),
        ));
    }
    Ok(Clause::Prefix(analysis::normalize(stem)))
}

fn operator(parsed: &mut ParsedQuery, name: &str, value: &str) -> Result<(), QueryError> {
    let invalid = |why: &str| err("invalid_operator", format!("`{name}:{value}`: {why}"));
    if value.trim().is_empty() {
        return Err(invalid("the value is missing"));
    }
    match name {
        "in" => parsed.rooms.push(value.trim().to_owned()),
        "from" => {
            let user = value.trim().trim_start_matches('@');
            if user.is_empty() {
                return Err(invalid("the value is missing"));
            }
            parsed.senders.push(user.to_owned());
        }
        "before" | "after" => {
            let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| invalid("expected a date as YYYY-MM-DD"))?;
            if name == "before" {
                parsed.before = Some(parsed.before.map_or(day, |d| d.min(day)));
            } else {
                parsed.after = Some(parsed.after.map_or(day, |d| d.max(day)));
            }
        }
        "has" => {
            if !value.eq_ignore_ascii_case("link") {
                return Err(invalid("the only value is `link`"));
            }
            parsed.has_link = true;
        }
        _ => {
            return Err(err(
                "unknown_operator",
                format!("unknown search operator `{name}:`; known: {OPERATORS}"),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Word(String),
    Phrase(String),
    /// Lower-cased name, value (unquoted).
    Operator(String, String),
}

/// Splits `q` at white space, keeping quoted phrases and quoted operator values whole.
fn lex(q: &str) -> Result<Vec<Item>, QueryError> {
    let mut items = Vec::new();
    let mut rest = q.trim_start();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('"') {
            let (phrase, tail) = quoted(after)?;
            items.push(Item::Phrase(phrase.to_owned()));
            rest = tail;
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            match operator_name(word) {
                Some(name) => {
                    let value = &rest[name.len() + 1..];
                    if let Some(after) = value.strip_prefix('"') {
                        let (v, tail) = quoted(after)?;
                        items.push(Item::Operator(name.to_ascii_lowercase(), v.to_owned()));
                        rest = tail;
                    } else {
                        let v = &word[name.len() + 1..];
                        items.push(Item::Operator(name.to_ascii_lowercase(), v.to_owned()));
                        rest = &rest[end..];
                    }
                }
                None => {
                    items.push(Item::Word(word.to_owned()));
                    rest = &rest[end..];
                }
            }
        }
        rest = rest.trim_start();
    }
    Ok(items)
}

/// The text up to the closing quote, and what follows it.
fn quoted(after_quote: &str) -> Result<(&str, &str), QueryError> {
    let close = after_quote
        .find('"')
        .ok_or_else(|| err("invalid_query", "a quote (\") is not closed"))?;
    Ok((&after_quote[..close], &after_quote[close + 1..]))
}

/// `name` of a `name:value` word: ASCII letters before the first colon, and a value that is
/// not a URL's `//…`.
fn operator_name(word: &str) -> Option<&str> {
    let (name, value) = word.split_once(':')?;
    let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
    (is_name && !value.starts_with("//")).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clauses(q: &str) -> Vec<Clause> {
        parse(q).expect("parses").clauses
    }
    fn word(w: &str) -> Clause {
        Clause::Word(w.to_owned())
    }
    fn phrase(ws: &[&str]) -> Clause {
        Clause::Phrase(ws.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn words_phrases_and_prefixes() {
        assert_eq!(clauses("Hello  Café"), [word("hello"), word("cafe")]);
        assert_eq!(
            clauses("\"the Plan\" b"),
            [phrase(&["the", "plan"]), word("b")]
        );
        assert_eq!(clauses("conf*"), [Clause::Prefix("conf".to_owned())]);
        assert_eq!(clauses("report.png"), [phrase(&["report", "png"])]);
        assert_eq!(clauses("東京"), [phrase(&["東", "京"])]);
        assert_eq!(clauses("!!! ?"), []);
        assert_eq!(
            clauses("http://example.com"),
            [phrase(&["http", "example", "com"])]
        );
    }

    #[test]
    fn operators_are_parsed_with_quoted_values() {
        let p = parse(
            "in:\"team chat\" from:@alice FROM:bob before:2026-03-01 after:2026-01-31 has:link x",
        )
        .expect("parses");
        assert_eq!(p.rooms, ["team chat"]);
        assert_eq!(p.senders, ["alice", "bob"]);
        assert_eq!(p.before, NaiveDate::from_ymd_opt(2026, 3, 1));
        assert_eq!(p.after, NaiveDate::from_ymd_opt(2026, 1, 31));
        assert!(p.has_link);
        assert_eq!(p.clauses, [word("x")]);
    }

    #[test]
    fn unknown_and_malformed_operators_are_named() {
        let e = parse("hello foo:bar").expect_err("unknown");
        assert_eq!(e.code, "unknown_operator");
        assert!(e.message.contains("`foo:`"), "{}", e.message);
        for (q, named) in [
            ("before:2026-13-01", "`before:2026-13-01`"),
            ("after:yesterday", "`after:yesterday`"),
            ("has:image", "`has:image`"),
            ("in:", "`in:`"),
        ] {
            let e = parse(q).expect_err(q);
            assert_eq!(e.code, "invalid_operator", "{q}");
            assert!(e.message.contains(named), "{q}: {}", e.message);
        }
        assert_eq!(parse("\"open").expect_err("quote").code, "invalid_query");
    }

    #[test]
    fn limits_are_explicit() {
        assert_eq!(
            parse(&"a".repeat(MAX_QUERY_BYTES + 1))
                .expect_err("long")
                .code,
            "query_too_long"
        );
        let many = vec!["w"; MAX_CLAUSES + 1].join(" ");
        assert_eq!(parse(&many).expect_err("many").code, "too_many_terms");
        assert!(parse(&vec!["w"; MAX_CLAUSES].join(" ")).is_ok());
        assert_eq!(parse("c*").expect_err("short").code, "invalid_prefix");
        assert_eq!(
            parse(&format!("{}*", "a".repeat(MAX_PREFIX + 1)))
                .expect_err("long")
                .code,
            "invalid_prefix"
        );
        assert_eq!(parse("a.b*").expect_err("punct").code, "invalid_prefix");
        assert_eq!(parse("x\0").expect_err("nul").code, "invalid_query");
    }
}
