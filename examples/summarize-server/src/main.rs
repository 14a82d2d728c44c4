//! `summarize-server` binary: parses `--listen`, binds, serves forever.
//! Exit codes: 2 for usage errors, 1 when the address cannot be bound.

use std::net::TcpListener;
use std::process::ExitCode;

use summarize_server::args::{self, Command};
use summarize_server::server::{self, Limits};

fn main() -> ExitCode {
    let listen = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Serve { listen }) => listen,
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on `{listen}`\ncaused by: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("summarize-server: listening on {addr}"),
        Err(_) => eprintln!("summarize-server: listening on {listen}"),
    }
    if let Err(e) = server::serve(&listener, &Limits::default()) {
        eprintln!("error: accepting connections failed\ncaused by: {e}");
    }
    ExitCode::FAILURE
}
