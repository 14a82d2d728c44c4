//! dm-verity hash tree benchmark: `verity tree DATA OUT THREADS` builds the tree of the file DATA (a multiple of 4 KiB)
//! into OUT with `cvmforge::format::verity::write_tree` and prints the root hash; `builder/benches/verity.sh` runs it
//! under `/usr/bin/time -v` beside `veritysetup format` on the same data. See `benches/README.md`.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use cvmforge::format::verity::{write_tree, BLOCK};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let [cmd, data, out, threads] = &args[..] else {
        // `cargo bench` and `cargo test --all-targets` run this without arguments: nothing to do.
        println!("verity benchmark: run builder/benches/verity.sh");
        return ExitCode::SUCCESS;
    };
    if cmd != "tree" {
        eprintln!("usage: verity tree DATA OUT THREADS");
        return ExitCode::from(2);
    }
    match run(data, out, threads.parse().unwrap_or(1)) {
        Ok(root) => {
            println!("{root}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(data: &str, out: &str, threads: usize) -> Result<String, Box<dyn std::error::Error>> {
    let file = File::open(data)?;
    let blocks = file.metadata()?.len() / BLOCK;
    let out = File::create(out)?;
    let salt = [0x5a; 32];
    let tree = write_tree(&mut BufReader::with_capacity(1 << 20, file), blocks, &salt, &out, 0, threads)?;
    Ok(hex::encode(tree.root))
}
