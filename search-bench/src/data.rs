//! The generated messages: deterministic from a seed, the same for every backend.
//!
//! - A vocabulary of [`VOCABULARY`] synthetic words made of syllables, shortest first, drawn
//!   with a Zipf distribution (exponent [`ZIPF_EXPONENT`]): rank 1 is about 9 % of all words.
//! - Latin bodies of 3–30 words; about 3 % hold a URL (`https://www.<word>.com/<word>`), about
//!   3 % a file name (`<word>.png`, `.pdf`, …).
//! - 5 % CJK bodies: Chinese (Han only) or Japanese (Han and kana) runs without spaces, from a
//!   pool of [`HAN`] Han characters and 169 kana, Zipf-distributed, with `，`/`、` between runs.
//! - [`ROOMS`] rooms, each with 3–60 members out of [`SENDERS`] senders; a message is sent by a
//!   member of its room. `sent_at` spreads evenly over one year; positions are 1..=N.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use search::MessageDoc;
use serde::Serialize;
use uuid::Uuid;

pub const ROOMS: usize = 2_000;
pub const SENDERS: usize = 10_000;
pub const VOCABULARY: usize = 50_000;
pub const ZIPF_EXPONENT: f64 = 1.0;
/// Han characters in the CJK pool (spread over the whole unified-ideograph block).
pub const HAN: usize = 3_000;
const CJK_SHARE: f64 = 0.05;
const URL_SHARE: f64 = 0.03;
const FILE_SHARE: f64 = 0.03;
const FILE_EXTENSIONS: &[&str] = &["png", "pdf", "txt", "jpg", "docx", "csv", "zip", "mp4"];

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let cdf = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cdf.last().copied().unwrap_or(1.0);
        let u = rng.random::<f64>() * total;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// What was generated, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CorpusStats {
    pub messages: usize,
    pub rooms: usize,
    pub senders: usize,
    pub vocabulary: usize,
    pub zipf_exponent: f64,
    pub with_url: usize,
    pub with_file: usize,
    pub cjk: usize,
    pub body_bytes_mean: f64,
    pub latin_words_mean: f64,
    /// The commonest word (Zipf rank 1) and how many messages hold it.
    pub top_word: String,
    pub top_word_messages: usize,
    pub first_sent_at: String,
    pub last_sent_at: String,
}

pub struct Corpus {
    pub docs: Vec<MessageDoc>,
    /// The vocabulary by rank (most frequent first).
    pub words: Vec<String>,
    pub zipf: Zipf,
    pub rooms: Vec<Uuid>,
    /// Indexes into `docs` of each room's Latin messages.
    pub latin_by_room: Vec<Vec<u32>>,
    /// Indexes into `docs` of each room's CJK messages.
    pub cjk_by_room: Vec<Vec<u32>>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub stats: CorpusStats,
}

fn random_uuid(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// `n` distinct pronounceable words, shortest first.
fn vocabulary(rng: &mut impl Rng, n: usize) -> Vec<String> {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
        "br", "cr", "dr", "fr", "gr", "pr", "tr", "st", "sp", "ch", "sh", "th", "pl", "cl", "bl",
        "sl", "qu", "",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ou", "io", "y"];
    const CODAS: &[&str] = &["", "", "", "n", "r", "s", "l", "t", "m", "nd", "st", "ck"];
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut words = Vec::with_capacity(n);
    while words.len() < n {
        let syllables = match rng.random_range(0..100) {
            0..15 => 1,
            15..55 => 2,
            55..85 => 3,
            _ => 4,
        };
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS.choose(rng).copied().unwrap_or("b"));
            w.push_str(VOWELS.choose(rng).copied().unwrap_or("a"));
            w.push_str(CODAS.choose(rng).copied().unwrap_or(""));
        }
        if w.len() >= 2 && seen.insert(w.clone()) {
            words.push(w);
        }
    }
    // Frequent words are short, as in natural languages (stable: ties keep drawing order).
    words.sort_by_key(String::len);
    words
}

struct CjkPool {
    han: Vec<char>,
    kana: Vec<char>,
    han_zipf: Zipf,
    kana_zipf: Zipf,
}

impl CjkPool {
    fn new(rng: &mut impl Rng) -> CjkPool {
        let mut han: Vec<char> = (0..HAN as u32)
            .filter_map(|k| char::from_u32(0x4E00 + k * 7))
            .collect();
        let mut kana: Vec<char> = (0x3041..=0x3093u32)
            .chain(0x30A1..=0x30F6)
            .filter_map(char::from_u32)
            .collect();
        // Which characters are common is itself random.
        han.shuffle(rng);
        kana.shuffle(rng);
        CjkPool {
            han_zipf: Zipf::new(han.len(), ZIPF_EXPONENT),
            kana_zipf: Zipf::new(kana.len(), ZIPF_EXPONENT),
            han,
            kana,
        }
    }

    fn body(&self, rng: &mut impl Rng) -> String {
        let japanese = rng.random_bool(0.4);
        let len = rng.random_range(6..=40);
        let mut s = String::new();
        let mut run = 0;
        let mut next_break = rng.random_range(5..=15);
        for i in 0..len {
            let c = if japanese && rng.random_bool(0.5) {
                self.kana[self.kana_zipf.sample(rng)]
            } else {
                self.han[self.han_zipf.sample(rng)]
            };
            s.push(c);
            run += 1;
            if run == next_break && i + 1 < len {
                s.push(if japanese { '、' } else { '，' });
                run = 0;
                next_break = rng.random_range(5..=15);
            }
        }
        s.push('。');
        s
    }
}

pub fn generate(messages: usize, seed: u64) -> Corpus {
    let mut rng = StdRng::seed_from_u64(seed);
    let words = vocabulary(&mut rng, VOCABULARY);
    let zipf = Zipf::new(words.len(), ZIPF_EXPONENT);
    let cjk = CjkPool::new(&mut rng);
    let rooms: Vec<Uuid> = (0..ROOMS).map(|_| random_uuid(&mut rng)).collect();
    let senders: Vec<Uuid> = (0..SENDERS).map(|_| random_uuid(&mut rng)).collect();
    let members: Vec<Vec<Uuid>> = (0..ROOMS)
        .map(|_| {
            let n = rng.random_range(3..=60);
            rand::seq::index::sample(&mut rng, SENDERS, n)
                .into_iter()
                .map(|i| senders[i])
                .collect()
        })
        .collect();
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let year_us = Duration::days(365).num_microseconds().unwrap_or(i64::MAX);
    let end = start + Duration::days(365);
    let mut seq = vec![0i64; ROOMS];
    let mut latin_by_room = vec![Vec::new(); ROOMS];
    let mut cjk_by_room = vec![Vec::new(); ROOMS];
    let mut docs = Vec::with_capacity(messages);
    let mut stats = CorpusStats {
        messages,
        rooms: ROOMS,
        senders: SENDERS,
        vocabulary: words.len(),
        zipf_exponent: ZIPF_EXPONENT,
        ..CorpusStats::default()
    };
    let mut body_bytes = 0usize;
    let mut latin_words = 0usize;
    let url_share = URL_SHARE / (1.0 - CJK_SHARE);
    let file_share = FILE_SHARE / (1.0 - CJK_SHARE);
    for i in 0..messages {
        let room = rng.random_range(0..ROOMS);
        let sender = members[room].choose(&mut rng).copied().unwrap_or_default();
        let body = if rng.random_bool(CJK_SHARE) {
            stats.cjk += 1;
            cjk_by_room[room].push(i as u32);
            cjk.body(&mut rng)
        } else {
            latin_by_room[room].push(i as u32);
            let n = rng.random_range(3..=30);
            latin_words += n;
            let ranks: Vec<usize> = (0..n).map(|_| zipf.sample(&mut rng)).collect();
            stats.top_word_messages += usize::from(ranks.contains(&0));
            let mut tokens: Vec<String> = ranks.iter().map(|&r| words[r].clone()).collect();
            if let Some(first) = tokens.first_mut() {
                let mut c = first.chars();
                if let Some(h) = c.next() {
                    *first = h.to_ascii_uppercase().to_string() + c.as_str();
                }
            }
            if rng.random_bool(url_share) {
                stats.with_url += 1;
                let url = format!(
                    "https://www.{}.com/{}",
                    words[zipf.sample(&mut rng)],
                    words[zipf.sample(&mut rng)]
                );
                let at = rng.random_range(0..=tokens.len());
                tokens.insert(at, url);
            }
            if rng.random_bool(file_share) {
                stats.with_file += 1;
                let file = format!(
                    "{}.{}",
                    words[zipf.sample(&mut rng)],
                    FILE_EXTENSIONS.choose(&mut rng).copied().unwrap_or("txt")
                );
                let at = rng.random_range(0..=tokens.len());
                tokens.insert(at, file);
            }
            let mut body = tokens.join(" ");
            match rng.random_range(0..10) {
                0..3 => body.push('.'),
                3 => body.push('?'),
                4 => body.push('!'),
                _ => {}
            }
            body
        };
        body_bytes += body.len();
        seq[room] += 1;
        let position = i as i64 + 1;
        let sent_at =
            start + Duration::microseconds((i as i128 * year_us as i128 / messages as i128) as i64);
        docs.push(MessageDoc {
            message_id: random_uuid(&mut rng),
            room_id: rooms[room],
            seq: seq[room],
            sender_id: sender,
            sent_at,
            body,
            sent_position: position,
            position,
        });
    }
    stats.top_word = words.first().cloned().unwrap_or_default();
    stats.body_bytes_mean = body_bytes as f64 / messages.max(1) as f64;
    stats.latin_words_mean = latin_words as f64 / (messages - stats.cjk).max(1) as f64;
    stats.first_sent_at = docs
        .first()
        .map(|d| d.sent_at.to_rfc3339())
        .unwrap_or_default();
    stats.last_sent_at = docs
        .last()
        .map(|d| d.sent_at.to_rfc3339())
        .unwrap_or_default();
    Corpus {
        docs,
        words,
        zipf,
        rooms,
        latin_by_room,
        cjk_by_room,
        start,
        end,
        stats,
    }
}
