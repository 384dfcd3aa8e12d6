//! How text becomes terms, the same for both backends (the OpenSearch index template in
//! [`crate::opensearch`] states these rules in Lucene's terms; the contract suite checks that
//! the two agree on every feature).
//!
//! - Every CJK character (Han, Hiragana, Katakana, Hangul; [`is_cjk`]) is a term of its own, so
//!   text without spaces is found by any run of its characters, searched as a phrase: "東京"
//!   finds "東京タワーに行きました".
//! - Any other maximal run of letters and digits (Unicode `Alphabetic` or `Numeric`) is a word;
//!   everything else separates words, so "report.png" is "report" and "png", and
//!   "www.example.com" is "www", "example" and "com".
//! - Words are lower-cased and folded to ASCII where Unicode has a folding ("Café" → "cafe",
//!   "Straße" → "strasse"). No stop words are dropped.
//! - For partial words, the prefix field also holds each word's first 2 to [`MAX_PREFIX`]
//!   characters (edge n-grams), so "conf" finds "configuration" without a scan of the term
//!   dictionary.

use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The analyzer of the words field (and of every query term).
pub const WORDS: &str = "chat_words";
/// The analyzer of the prefix field.
pub const PREFIXES: &str = "chat_prefixes";
/// Shortest prefix indexed (and searchable with `prefix*`).
pub const MIN_PREFIX: usize = 2;
/// Longest prefix indexed: a word's start is found up to this many characters.
pub const MAX_PREFIX: usize = 20;

/// Whether `c` is a CJK character, indexed as a term of its own. The ranges are the ones the
/// OpenSearch template's `cjk_split` character filter names.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul Jamo
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FFFF  // CJK extensions B and on
    )
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !is_cjk(c)
}

/// A CJK letter: a term of its own (CJK punctuation such as "・" separates, like any other).
fn is_cjk_letter(c: char) -> bool {
    c.is_alphanumeric() && is_cjk(c)
}

/// A raw token of a text: its byte range and whether it is one CJK character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub cjk: bool,
}

/// Splits `text` into words and CJK characters, in order (see the module's rules).
pub fn spans(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut word: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if is_cjk_letter(c) {
            if let Some(start) = word.take() {
                out.push(Span {
                    start,
                    end: i,
                    cjk: false,
                });
            }
            out.push(Span {
                start: i,
                end: i + c.len_utf8(),
                cjk: true,
            });
        } else if is_word_char(c) {
            word.get_or_insert(i);
        } else if let Some(start) = word.take() {
            out.push(Span {
                start,
                end: i,
                cjk: false,
            });
        }
    }
    if let Some(start) = word {
        out.push(Span {
            start,
            end: text.len(),
            cjk: false,
        });
    }
    out
}

/// A term as the index holds it: lower-cased and folded like the analyzers do.
pub fn normalize(word: &str) -> String {
    let mut analyzer = words_analyzer();
    let mut stream = analyzer.token_stream(word);
    let mut out = String::new();
    while stream.advance() {
        out.push_str(&stream.token().text);
    }
    out
}

/// A text's terms, normalized, with their spans.
pub fn terms(text: &str) -> Vec<(Span, String)> {
    spans(text)
        .into_iter()
        .map(|s| (s, normalize(&text[s.start..s.end])))
        .collect()
}

/// The words field's analyzer for Tantivy.
pub fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer { prefixes: false })
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The prefix field's analyzer for Tantivy: the edge n-grams of every word.
pub fn prefixes_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer { prefixes: true })
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The tokenizer under both analyzers: words and CJK characters, or (with `prefixes`) each
/// word's starts of [`MIN_PREFIX`]..=[`MAX_PREFIX`] characters. Folding comes after it, so a
/// prefix is folded like the word ("Café" → "ca", "caf", "cafe").
#[derive(Clone, Copy, Debug)]
struct WordTokenizer {
    prefixes: bool,
}

struct Tokens {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = Tokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens {
        let mut tokens = Vec::new();
        for (position, span) in spans(text).into_iter().enumerate() {
            let word = &text[span.start..span.end];
            if !self.prefixes {
                tokens.push(token(word, span.start, position));
                continue;
            }
            if span.cjk {
                continue;
            }
            for (n, (i, c)) in word.char_indices().enumerate().skip(MIN_PREFIX - 1) {
                if n >= MAX_PREFIX {
                    break;
                }
                let end = i + c.len_utf8();
                tokens.push(token(&word[..end], span.start, position));
            }
        }
        Tokens { tokens, next: 0 }
    }
}

fn token(text: &str, offset: usize, position: usize) -> Token {
    Token {
        offset_from: offset,
        offset_to: offset + text.len(),
        position,
        text: text.to_owned(),
        position_length: 1,
    }
}

/// Whether a body holds a link (`has:link`): an `http://` or `https://` URL or a `www.` name.
pub fn has_link(body: &str) -> bool {
    let lower = body.to_lowercase();
    lower.contains("http://") || lower.contains("https://") || {
        lower
            .match_indices("www.")
            .any(|(i, _)| i == 0 || !lower[..i].ends_with(|c: char| c.is_alphanumeric()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        terms(text).into_iter().map(|(_, t)| t).collect()
    }

    fn analyzed(mut analyzer: TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn words_split_at_punctuation_and_are_folded() {
        assert_eq!(
            words("Café au lait, see www.example.com/report.png"),
            [
                "cafe", "au", "lait", "see", "www", "example", "com", "report", "png"
            ]
        );
        assert_eq!(words("Straße ÉCOLE naïve"), ["strasse", "ecole", "naive"]);
        assert_eq!(words("The a of"), ["the", "a", "of"], "stop words stay");
    }

    #[test]
    fn every_cjk_character_is_a_term() {
        assert_eq!(
            words("明天的会议取消了"),
            ["明", "天", "的", "会", "议", "取", "消", "了"]
        );
        assert_eq!(
            words("東京タワーに行きました"),
            [
                "東", "京", "タ", "ワ", "ー", "に", "行", "き", "ま", "し", "た"
            ]
        );
        assert_eq!(words("abc東京def"), ["abc", "東", "京", "def"]);
    }

    #[test]
    fn prefixes_are_the_starts_of_words_folded_and_bounded() {
        assert_eq!(
            analyzed(prefixes_analyzer(), "Café 東 x"),
            ["ca", "caf", "cafe"]
        );
        let long = "a".repeat(30);
        let grams = analyzed(prefixes_analyzer(), &long);
        assert_eq!(grams.len(), MAX_PREFIX - MIN_PREFIX + 1);
        assert_eq!(grams.last().map(String::len), Some(MAX_PREFIX));
    }

    #[test]
    fn links_are_detected() {
        assert!(has_link("see https://example.com"));
        assert!(has_link("HTTP://X.ORG"));
        assert!(has_link("go to www.example.com"));
        assert!(!has_link("awww.nice"));
        assert!(!has_link("no link here, just report.png"));
    }
}
