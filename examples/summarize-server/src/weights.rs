//! Corpus term weights: the demo's "model", read from the image's dm-verity data volume.
//!
//! A weight is a smoothed inverse document frequency over a corpus, with each blank-line-separated paragraph one
//! document: `w(t) = ln((1 + N) / (1 + df(t))) + 1`. A term the corpus never uses gets the weight of a term in no
//! document, `ln(1 + N) + 1`. The summariser multiplies each term's TF-IDF in the text by it, so that words common
//! in ordinary prose count for less. Tokens are the summariser's own ([`crate::summarize::tokenize`]).
//!
//! The file (`terms.tsv`) is text: a first line `#cvmforge-weights/v1<TAB>default=<w>`, then one `term<TAB>weight`
//! line per term in sorted order, weights with six decimals, so that the same corpus always gives the same bytes.

use std::collections::BTreeMap;

use crate::summarize::tokenize;

/// First field of the header line.
pub const HEADER: &str = "#cvmforge-weights/v1";
/// Largest weights file read.
pub const MAX_FILE: u64 = 16 << 20;

/// Term weights and the weight of unknown terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Weight of each known term.
    pub terms: BTreeMap<String, f64>,
    /// Weight of a term not in [`Weights::terms`].
    pub default: f64,
}

/// Why a weights file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeightsError {
    /// Not UTF-8.
    #[error("the weights file is not UTF-8")]
    NotUtf8,
    /// The first line is not the header.
    #[error("line 1: expected `{HEADER}<TAB>default=<weight>`")]
    Header,
    /// A line is not `term<TAB>weight`, or terms are out of order.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Weights {
    /// The weight of `term`.
    pub fn of(&self, term: &str) -> f64 {
        self.terms.get(term).copied().unwrap_or(self.default)
    }

    /// Computes the weights of a corpus of texts (each split into paragraphs).
    pub fn compute<'a>(texts: impl IntoIterator<Item = &'a str>) -> Weights {
        let mut df: BTreeMap<String, u32> = BTreeMap::new();
        let mut documents = 0u32;
        for text in texts {
            for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
                documents += 1;
                let mut seen: Vec<String> = tokenize(paragraph);
                seen.sort();
                seen.dedup();
                for term in seen {
                    *df.entry(term).or_insert(0) += 1;
                }
            }
        }
        let n = f64::from(documents);
        let terms = df.into_iter().map(|(t, d)| (t, ((1.0 + n) / (1.0 + f64::from(d))).ln() + 1.0)).collect();
        Weights { terms, default: (1.0 + n).ln() + 1.0 }
    }

    /// The file bytes.
    pub fn to_tsv(&self) -> String {
        let mut out = format!("{HEADER}\tdefault={:.6}\n", self.default);
        for (term, w) in &self.terms {
            out.push_str(&format!("{term}\t{w:.6}\n"));
        }
        out
    }

    /// Parses a weights file.
    pub fn parse(bytes: &[u8]) -> Result<Weights, WeightsError> {
        let text = std::str::from_utf8(bytes).map_err(|_| WeightsError::NotUtf8)?;
        let mut lines = text.lines();
        let default = lines
            .next()
            .and_then(|l| l.strip_prefix(HEADER))
            .and_then(|l| l.strip_prefix("\tdefault="))
            .and_then(weight)
            .ok_or(WeightsError::Header)?;
        let mut terms = BTreeMap::new();
        let mut last: Option<&str> = None;
        for (i, line) in lines.enumerate() {
            let bad = |reason| WeightsError::Line { line: i + 2, reason };
            let (term, w) = line.split_once('\t').ok_or_else(|| bad("expected `term<TAB>weight`"))?;
            if term.is_empty() {
                return Err(bad("empty term"));
            }
            if last.is_some_and(|l| l >= term) {
                return Err(bad("terms must be unique and in sorted order"));
            }
            let w = weight(w).ok_or_else(|| bad("the weight is not a finite number from 0 to 1000"))?;
            terms.insert(term.to_owned(), w);
            last = Some(term);
        }
        Ok(Weights { terms, default })
    }
}

fn weight(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|w| w.is_finite() && (0.0..=1000.0).contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_smoothed_idf_per_paragraph() {
        let w = Weights::compute(["the cat\n\nthe dog", "the end"]);
        // Three documents; `the` is in all three, `cat` in one.
        assert!((w.of("the") - 1.0).abs() < 1e-12);
        assert!((w.of("cat") - ((4.0f64 / 2.0).ln() + 1.0)).abs() < 1e-12);
        assert!((w.of("unknown") - (4.0f64.ln() + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn round_trips_through_the_file_format() {
        let w = Weights::compute(["Alpha beta.\n\nBeta gamma; gamma delta."]);
        let text = w.to_tsv();
        assert!(text.starts_with("#cvmforge-weights/v1\tdefault=2.098612\nalpha\t1.405465\n"), "{text}");
        let back = Weights::parse(text.as_bytes()).unwrap();
        assert_eq!(back.to_tsv(), text);
    }

    #[test]
    fn rejects_malformed_files() {
        assert_eq!(Weights::parse(b"alpha\t1\n"), Err(WeightsError::Header));
        let head = "#cvmforge-weights/v1\tdefault=2\n";
        for (body, line, reason) in [
            ("b\t1\na\t1\n", 3, "terms must be unique and in sorted order"),
            ("a 1\n", 2, "expected `term<TAB>weight`"),
            ("a\tNaN\n", 2, "the weight is not a finite number from 0 to 1000"),
            ("\t1\n", 2, "empty term"),
        ] {
            assert_eq!(Weights::parse(format!("{head}{body}").as_bytes()), Err(WeightsError::Line { line, reason }));
        }
        assert_eq!(Weights::parse(b"\xff"), Err(WeightsError::NotUtf8));
    }
}
