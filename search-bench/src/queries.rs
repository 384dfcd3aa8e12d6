//! The query mix, the same list for every backend: each query is a random caller's (a member
//! of 50 random rooms), so it searches only those rooms.
//!
//! - 30 % one word, Zipf-sampled from the vocabulary (some common, some rare);
//! - 20 % a phrase of two adjacent words taken from a message in the caller's rooms;
//! - 20 % a prefix (`conf*`): the first 3–5 characters of a Zipf-sampled word;
//! - 15 % filtered: half a word of a message in the caller's rooms plus that message's sender,
//!   half a Zipf-sampled word plus a date range of 7–90 days;
//! - 15 % CJK: two or three adjacent CJK characters from a CJK message in the caller's rooms.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use search::{SearchRequest, Sort};
use serde::Serialize;
use uuid::Uuid;

use crate::data::{Corpus, ROOMS};

/// Rooms each caller is a member of.
pub const CALLER_ROOMS: usize = 50;
/// Hits per page.
pub const LIMIT: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Word,
    Phrase,
    Prefix,
    Filtered,
    Cjk,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Word,
        Kind::Phrase,
        Kind::Prefix,
        Kind::Filtered,
        Kind::Cjk,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Word => "word",
            Kind::Phrase => "phrase",
            Kind::Prefix => "prefix",
            Kind::Filtered => "filtered",
            Kind::Cjk => "cjk",
        }
    }

    fn share(self) -> f64 {
        match self {
            Kind::Word => 0.30,
            Kind::Phrase | Kind::Prefix => 0.20,
            Kind::Filtered | Kind::Cjk => 0.15,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Query {
    pub kind: Kind,
    /// In the search language (`word`, `"two words"`, `conf*`, `東京`).
    pub q: String,
    #[serde(skip)]
    pub rooms: Vec<Uuid>,
    pub sender: Option<Uuid>,
    pub sent_from: Option<DateTime<Utc>>,
    pub sent_before: Option<DateTime<Utc>>,
    /// PostgreSQL's tsquery function (`plainto_tsquery`, `phraseto_tsquery`, `to_tsquery`)…
    pub pg_function: &'static str,
    /// …and its text.
    pub pg_text: String,
}

impl Query {
    /// The request the query API would make of a search backend.
    pub fn request(&self) -> anyhow::Result<SearchRequest> {
        let parsed = search::query::parse(&self.q)
            .map_err(|e| anyhow::anyhow!("the generated query {:?}: {e}", self.q))?;
        Ok(SearchRequest {
            clauses: parsed.clauses,
            rooms: self.rooms.clone(),
            senders: self.sender.into_iter().collect(),
            sent_from: self.sent_from,
            sent_before: self.sent_before,
            has_link: false,
            sort: Sort::Relevance,
            limit: LIMIT,
            snapshot: None,
            after: None,
        })
    }
}

/// The plain words of a Latin body, lower-cased, in order, with `None` where something else (a
/// URL, a file name) stands between them.
fn plain_words(body: &str) -> Vec<Option<String>> {
    body.split_whitespace()
        .map(|t| {
            let t = t.trim_end_matches(['.', '?', '!', ',']);
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()))
                .then(|| t.to_ascii_lowercase())
        })
        .collect()
}

struct Gen<'a, R: Rng> {
    corpus: &'a Corpus,
    rng: R,
}

impl<R: Rng> Gen<'_, R> {
    fn zipf_word(&mut self) -> String {
        self.corpus.words[self.corpus.zipf.sample(&mut self.rng)].clone()
    }

    /// A message of the caller's rooms from `by_room` (any room's when theirs have none).
    fn message_in(&mut self, rooms: &[usize], by_room: &[Vec<u32>]) -> Option<usize> {
        for _ in 0..200 {
            let room = *rooms.choose(&mut self.rng)?;
            if let Some(&m) = by_room[room].choose(&mut self.rng) {
                return Some(m as usize);
            }
        }
        for _ in 0..10_000 {
            let room = self.rng.random_range(0..by_room.len());
            if let Some(&m) = by_room[room].choose(&mut self.rng) {
                return Some(m as usize);
            }
        }
        None
    }

    fn latin_words(&mut self, rooms: &[usize]) -> Vec<Option<String>> {
        let corpus = self.corpus;
        self.message_in(rooms, &corpus.latin_by_room)
            .map(|m| plain_words(&corpus.docs[m].body))
            .unwrap_or_default()
    }

    fn query(&mut self, kind: Kind) -> Query {
        let rooms: Vec<usize> = rand::seq::index::sample(&mut self.rng, ROOMS, CALLER_ROOMS)
            .into_iter()
            .collect();
        let mut q = Query {
            kind,
            q: String::new(),
            rooms: rooms.iter().map(|&r| self.corpus.rooms[r]).collect(),
            sender: None,
            sent_from: None,
            sent_before: None,
            pg_function: "plainto_tsquery",
            pg_text: String::new(),
        };
        match kind {
            Kind::Word => {
                q.pg_text = self.zipf_word();
                q.q = q.pg_text.clone();
            }
            Kind::Phrase => {
                let mut pair = None;
                for _ in 0..50 {
                    let words = self.latin_words(&rooms);
                    let pairs: Vec<(String, String)> = words
                        .windows(2)
                        .filter_map(|w| match (&w[0], &w[1]) {
                            (Some(a), Some(b)) => Some((a.clone(), b.clone())),
                            _ => None,
                        })
                        .collect();
                    if let Some(p) = pairs.choose(&mut self.rng) {
                        pair = Some(p.clone());
                        break;
                    }
                }
                let (a, b) = pair.unwrap_or_else(|| (self.zipf_word(), self.zipf_word()));
                q.pg_function = "phraseto_tsquery";
                q.pg_text = format!("{a} {b}");
                q.q = format!("\"{a} {b}\"");
            }
            Kind::Prefix => {
                let word = self.zipf_word();
                let n = self.rng.random_range(3..=5).min(word.len());
                let prefix = &word[..n];
                q.pg_function = "to_tsquery";
                q.pg_text = format!("{prefix}:*");
                q.q = format!("{prefix}*");
            }
            Kind::Filtered => {
                if self.rng.random_bool(0.5) {
                    let corpus = self.corpus;
                    let m = self.message_in(&rooms, &corpus.latin_by_room);
                    let word = m
                        .and_then(|m| {
                            let words: Vec<String> = plain_words(&corpus.docs[m].body)
                                .into_iter()
                                .flatten()
                                .collect();
                            words.choose(&mut self.rng).cloned()
                        })
                        .unwrap_or_else(|| self.zipf_word());
                    q.sender = m.map(|m| self.corpus.docs[m].sender_id);
                    q.pg_text = word;
                } else {
                    let days = self.rng.random_range(7..=90);
                    let span = (self.corpus.end - self.corpus.start - Duration::days(days))
                        .num_seconds()
                        .max(1);
                    let from =
                        self.corpus.start + Duration::seconds(self.rng.random_range(0..span));
                    q.sent_from = Some(from);
                    q.sent_before = Some(from + Duration::days(days));
                    q.pg_text = self.zipf_word();
                }
                q.q = q.pg_text.clone();
            }
            Kind::Cjk => {
                let corpus = self.corpus;
                let text = self.message_in(&rooms, &corpus.cjk_by_room).and_then(|m| {
                    let chars: Vec<char> = corpus.docs[m].body.chars().collect();
                    let n = self.rng.random_range(2..=3);
                    let starts: Vec<usize> = (0..chars.len().saturating_sub(n - 1))
                        .filter(|&i| {
                            chars[i..i + n]
                                .iter()
                                .all(|&c| search::analysis::is_cjk(c) && c.is_alphanumeric())
                        })
                        .collect();
                    let &i = starts.choose(&mut self.rng)?;
                    Some(chars[i..i + n].iter().collect::<String>())
                });
                q.pg_function = "phraseto_tsquery";
                q.pg_text = text.unwrap_or_else(|| "東京".to_owned());
                q.q = q.pg_text.clone();
            }
        }
        q
    }
}

/// `n` queries of the mix (each kind's share rounded, the rest single words), shuffled.
pub fn generate(corpus: &Corpus, n: usize, rng: impl Rng) -> Vec<Query> {
    let mut kinds = Vec::with_capacity(n);
    for kind in Kind::ALL.into_iter().skip(1) {
        let count = (n as f64 * kind.share()).round() as usize;
        kinds.extend(std::iter::repeat_n(kind, count.min(n - kinds.len())));
    }
    kinds.extend(std::iter::repeat_n(Kind::Word, n - kinds.len()));
    let mut g = Gen { corpus, rng };
    kinds.shuffle(&mut g.rng);
    kinds.into_iter().map(|k| g.query(k)).collect()
}
