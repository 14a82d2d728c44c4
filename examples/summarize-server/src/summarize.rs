//! TF-IDF extractive summarisation (method `tfidf-extractive/v1`).
//!
//! The algorithm, fixed so that the same text always yields the same summary:
//! 1. Split the text into sentences: a sentence ends after a run of terminators
//!    (`.`, `!`, `?`, `…`, `。`, `！`, `？`) plus any closing quotes or brackets,
//!    when followed by whitespace or the end of the text. Newline pairs
//!    (blank lines) also end a sentence. Empty sentences are dropped.
//! 2. Tokenise each sentence: lowercase (Unicode), tokens are maximal runs of
//!    Unicode alphanumeric characters.
//! 3. Treat each sentence as a document: `idf(t) = ln(N / df(t))`, where `N` is
//!    the number of sentences and `df(t)` the number of sentences containing `t`.
//!    `tf(t, s) = count(t, s) / len(s)`. The score of `s` is the sum over its
//!    distinct terms of `tf * idf`, summed in sorted term order so that equal
//!    term multisets give bit-identical scores.
//! 4. Rank by score descending, then position ascending; keep the first
//!    `max_sentences` and output them in their original order.

use std::collections::BTreeMap;

use crate::weights::Weights;

/// Name of the method, reported in every response.
pub const METHOD: &str = "tfidf-extractive/v1";

/// Number of sentences returned when the request does not say.
pub const DEFAULT_MAX_SENTENCES: usize = 3;

/// The result of summarising one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Selected sentences in original order, joined by one space.
    pub summary: String,
    /// Zero-based indices of the selected sentences, ascending.
    pub sentences: Vec<usize>,
}

/// Characters that end a sentence.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？')
}

/// Characters that may follow a terminator and still belong to the sentence.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』' | '）')
}

/// Terminators of CJK scripts end a sentence even without following whitespace.
fn is_wide_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

/// Splits `text` into trimmed, non-empty sentences.
pub fn split_sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let mut end = None;
        if is_terminator(c) {
            let mut wide = is_wide_terminator(c);
            let mut after = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if is_terminator(d) || is_closer(d) {
                    wide |= is_wide_terminator(d);
                    after = j + d.len_utf8();
                    iter.next();
                } else {
                    break;
                }
            }
            let next = iter.peek().map(|&(_, d)| d);
            if wide || next.is_none_or(char::is_whitespace) {
                end = Some(after);
            }
        } else if c == '\n' && text[i + 1..].trim_start_matches([' ', '\t', '\r']).starts_with('\n') {
            end = Some(i);
        }
        if let Some(end) = end {
            push_trimmed(&mut out, &text[start..end]);
            start = end;
        }
    }
    push_trimmed(&mut out, &text[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim();
    if !s.is_empty() {
        out.push(s);
    }
}

/// Lowercases `sentence` and returns its alphanumeric tokens.
pub fn tokenize(sentence: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in sentence.chars() {
        if c.is_alphanumeric() {
            current.extend(c.to_lowercase());
        } else if !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// Term counts of one sentence, in sorted term order.
fn term_counts(tokens: &[String]) -> BTreeMap<&str, u32> {
    let mut counts = BTreeMap::new();
    for t in tokens {
        *counts.entry(t.as_str()).or_insert(0u32) += 1;
    }
    counts
}

/// Name of the method when corpus weights are used: each term's TF-IDF is multiplied by its corpus weight.
pub const METHOD_WEIGHTED: &str = "tfidf-extractive/v1+corpus-weights";

/// TF-IDF score of each sentence, in sentence order.
pub fn score_sentences(sentences: &[&str]) -> Vec<f64> {
    score_sentences_weighted(sentences, None)
}

/// TF-IDF score of each sentence, each term's part multiplied by its corpus weight when `weights` is given.
pub fn score_sentences_weighted(sentences: &[&str], weights: Option<&Weights>) -> Vec<f64> {
    let tokens: Vec<Vec<String>> = sentences.iter().map(|s| tokenize(s)).collect();
    let counts: Vec<BTreeMap<&str, u32>> = tokens.iter().map(|t| term_counts(t)).collect();
    let mut df: BTreeMap<&str, u32> = BTreeMap::new();
    for c in &counts {
        for term in c.keys() {
            *df.entry(term).or_insert(0) += 1;
        }
    }
    let n = f64::from(u32::try_from(sentences.len()).unwrap_or(u32::MAX));
    tokens
        .iter()
        .zip(&counts)
        .map(|(toks, c)| {
            let len = f64::from(u32::try_from(toks.len()).unwrap_or(u32::MAX));
            c.iter()
                .map(|(term, &count)| {
                    let d = f64::from(df.get(term).copied().unwrap_or(1));
                    let w = weights.map_or(1.0, |w| w.of(term));
                    (f64::from(count) / len) * (n / d).ln() * w
                })
                .sum()
        })
        .collect()
}

/// Summarises `text` into at most `max_sentences` sentences.
pub fn summarize(text: &str, max_sentences: usize) -> Summary {
    summarize_weighted(text, max_sentences, None)
}

/// [`summarize`] with corpus weights.
pub fn summarize_weighted(text: &str, max_sentences: usize, weights: Option<&Weights>) -> Summary {
    let sentences = split_sentences(text);
    let scores = score_sentences_weighted(&sentences, weights);
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    // Score descending, then position ascending: a total, deterministic order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(max_sentences);
    order.sort_unstable();
    let summary = order.iter().map(|&i| sentences[i]).collect::<Vec<_>>().join(" ");
    Summary { summary, sentences: order }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_terminators_followed_by_space() {
        assert_eq!(
            split_sentences("Hello world. Version 1.5 is out! Is it? \"Yes.\" Done"),
            vec!["Hello world.", "Version 1.5 is out!", "Is it?", "\"Yes.\"", "Done"]
        );
    }

    #[test]
    fn splits_on_blank_lines_and_cjk_terminators() {
        assert_eq!(split_sentences("Title\n\nBody text\nstill body.  \n"), vec!["Title", "Body text\nstill body."]);
        assert_eq!(split_sentences("今日は晴れです。明日は雨です！"), vec!["今日は晴れです。", "明日は雨です！"]);
    }

    #[test]
    fn tokenizes_unicode_lowercase() {
        assert_eq!(
            tokenize("Größe ÉCOLE, naïve-Test 42x ΣΟΦΙΑ"),
            vec!["größe", "école", "naïve", "test", "42x", "σοφια"]
        );
    }

    #[test]
    fn scores_match_hand_computed_tfidf() {
        // Three sentences; "a" in all (idf 0), "b" in two (ln 1.5), "c" and "d" in one (ln 3).
        let s = ["a b c.", "a b.", "a d d d."];
        let scores = score_sentences(&s);
        let l15 = 1.5f64.ln();
        let l3 = 3f64.ln();
        let expected = [l15 / 3.0 + l3 / 3.0, l15 / 2.0, 3.0 * l3 / 4.0];
        for (got, want) in scores.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }

    #[test]
    fn selects_top_scores_in_original_order() {
        let text = "The cat sat. Quantum chromodynamics describes gluons. The cat ran. \
                    Neutrinos oscillate between flavours.";
        let s = summarize(text, 2);
        assert_eq!(s.sentences, vec![1, 3]);
        assert_eq!(s.summary, "Quantum chromodynamics describes gluons. Neutrinos oscillate between flavours.");
    }

    #[test]
    fn ties_break_by_position() {
        // All three sentences have identical scores (same term-frequency profile).
        let text = "Alpha beta. Gamma delta. Epsilon zeta.";
        let scores = score_sentences(&split_sentences(text));
        assert_eq!(scores[0].to_bits(), scores[1].to_bits());
        assert_eq!(scores[1].to_bits(), scores[2].to_bits());
        assert_eq!(summarize(text, 2).sentences, vec![0, 1]);
        // Identical sentences in different word order tie exactly too.
        // "Quick red." ranks first; the two permutations tie for second.
        let text = "Red blue green. Quick red. Green red blue.";
        let scores = score_sentences(&split_sentences(text));
        assert_eq!(scores[0].to_bits(), scores[2].to_bits());
        assert!(scores[1] > scores[0]);
        assert_eq!(summarize(text, 2).sentences, vec![0, 1]);
    }

    #[test]
    fn is_deterministic() {
        let text = "Rust is a language. It has ownership. Ownership prevents data races. \
                    Data races are bugs. Bugs are bad. Rust prevents many bugs.";
        let first = summarize(text, 3);
        for _ in 0..20 {
            assert_eq!(summarize(text, 3), first);
        }
        assert_eq!(first.sentences.len(), 3);
    }

    #[test]
    fn handles_unicode_text() {
        let text = "Die Straße ist lang. Über den Fluss führt eine Brücke. Die Straße ist lang.";
        let s = summarize(text, 1);
        assert_eq!(s.sentences, vec![1]);
        assert_eq!(s.summary, "Über den Fluss führt eine Brücke.");
    }

    #[test]
    fn handles_empty_and_tokenless_text() {
        assert_eq!(summarize("", 3), Summary { summary: String::new(), sentences: vec![] });
        assert_eq!(summarize("   \n\n  ", 3).sentences, Vec::<usize>::new());
        let s = summarize("... !!! ???", 3);
        assert_eq!(s.sentences, vec![0, 1, 2]);
        assert_eq!(s.summary, "... !!! ???");
    }

    #[test]
    fn returns_all_when_fewer_sentences_than_requested() {
        let s = summarize("One sentence. Two sentences.", 5);
        assert_eq!(s.sentences, vec![0, 1]);
        assert_eq!(s.summary, "One sentence. Two sentences.");
    }
}
