//! `summarize-server`: the demo inference payload of a cvmforge image.
//!
//! A small HTTP/1.1 server with one model: TF-IDF extractive summarisation
//! (see [`summarize`]). `POST /v1/summarize` takes
//! `{"text": "...", "max_sentences": 3}` and answers
//! `{"summary": "...", "sentences": [..], "method": "tfidf-extractive/v1"}`;
//! `GET /healthz` answers `ok`. It keeps no state between requests and logs no
//! request content.
//!
//! # Example
//! ```
//! let s = summarize_server::summarize::summarize("Cats purr. Dogs bark loudly. Cats purr.", 1);
//! assert_eq!(s.summary, "Dogs bark loudly.");
//! assert_eq!(s.sentences, vec![1]);
//! ```
#![deny(missing_docs)]

pub mod args;
pub mod attest;
pub mod client;
pub mod http;
pub mod server;
pub mod summarize;
pub mod tls;
pub mod weights;
