//! `make-weights CORPUS_DIR OUT`: computes the corpus term weights ([`summarize_server::weights`]) of the `.txt`
//! files of CORPUS_DIR, read in sorted name order, and writes them to OUT (through a temporary file and a rename).
//! The same corpus always gives the same bytes.

use std::path::Path;
use std::process::ExitCode;

use summarize_server::weights::Weights;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, out] = &args[..] else {
        eprintln!("usage: make-weights CORPUS_DIR OUT");
        return ExitCode::from(2);
    };
    match run(Path::new(corpus), Path::new(out)) {
        Ok(terms) => {
            eprintln!("make-weights: {terms} terms written to {out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(corpus: &Path, out: &Path) -> Result<usize, String> {
    let mut names: Vec<_> = std::fs::read_dir(corpus)
        .map_err(|e| format!("cannot read `{}`: {e}", corpus.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(format!("`{}` holds no .txt file", corpus.display()));
    }
    let texts = names
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("cannot read `{}`: {e}", p.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let weights = Weights::compute(texts.iter().map(String::as_str));
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, weights.to_tsv()).map_err(|e| format!("cannot write `{}`: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("cannot rename to `{}`: {e}", out.display()))?;
    Ok(weights.terms.len())
}
