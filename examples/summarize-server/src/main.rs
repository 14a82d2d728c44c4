//! `summarize-server` binary: parses `--listen`, `--tls-listen` and `--weights`, binds, serves forever.
//! Exit codes: 2 for usage errors, 1 when an address cannot be bound or the TLS key cannot be made.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use summarize_server::args::{self, Command};
use summarize_server::server::{self, Budget, Limits, Service};

fn bind(listen: &str, what: &str) -> Option<TcpListener> {
    match TcpListener::bind(listen) {
        Ok(l) => {
            let shown = l.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| listen.to_owned());
            eprintln!("summarize-server: listening on {shown}{what}");
            Some(l)
        }
        Err(e) => {
            eprintln!("error: cannot listen on `{listen}`\ncaused by: {e}");
            None
        }
    }
}

fn main() -> ExitCode {
    let (listen, tls_listen, weights) = match args::parse(std::env::args().skip(1)) {
        Ok(Command::Serve { listen, tls_listen, weights }) => (listen, tls_listen, weights),
        Ok(Command::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let limits = Limits::default();
    let budget = Arc::new(Budget::default());
    let weights = weights.map(|path| Arc::new(server::WeightsFile::new(&path)));
    if let Some(file) = &weights {
        // Read once at start-up so that the console says at once whether the model is usable.
        match file.get() {
            Ok(w) => eprintln!("summarize-server: {} corpus term weights loaded", w.terms.len()),
            Err(e) => eprintln!("summarize-server: the model's weights are unavailable: {e}"),
        }
    }
    let mut service = Service { weights, ..Service::default() };
    if let Some(tls_listen) = tls_listen {
        let identity = match summarize_server::tls::generate() {
            Ok(identity) => identity,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(listener) = bind(&tls_listen, " (TLS)") else { return ExitCode::FAILURE };
        eprintln!("summarize-server: TLS key SPKI sha256 {}", hex::encode(identity.spki_sha256));
        // Plain listener: health and attestation only; TLS listener: the summariser (and attestation).
        service = Service { tls_spki_sha256: Some(identity.spki_sha256), summarize_tls_only: true, ..service };
        let tls_service = Service { summarize_tls_only: false, ..service.clone() };
        let (limits, budget) = (limits.clone(), Arc::clone(&budget));
        std::thread::spawn(move || {
            if let Err(e) = server::serve_with(&listener, &limits, &budget, &tls_service, Some(identity.config)) {
                eprintln!("error: accepting TLS connections failed\ncaused by: {e}");
                std::process::exit(1);
            }
        });
    }
    let Some(listener) = bind(&listen, "") else { return ExitCode::FAILURE };
    if let Err(e) = server::serve_with(&listener, &limits, &budget, &service, None) {
        eprintln!("error: accepting connections failed\ncaused by: {e}");
    }
    ExitCode::FAILURE
}
