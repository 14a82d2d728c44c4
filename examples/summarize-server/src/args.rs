//! Command-line arguments: `--listen ADDR`, `--tls-listen ADDR`, `--weights FILE` and `--help`.

/// Address used when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Usage text printed by `--help` and on usage errors.
pub const USAGE: &str = "usage: summarize-server [--listen ADDR] [--tls-listen ADDR] [--weights FILE]\n\n\
  --listen ADDR      plain HTTP address (default 127.0.0.1:8080; use 0.0.0.0:8080 in a VM): /healthz, and with\n\
                     --tls-listen, /v1/attestation (the report that binds the TLS key); summaries then go over TLS\n\
  --tls-listen ADDR  TLS address for /v1/summarize, with a key made at start-up that never leaves memory\n\
  --weights FILE     corpus term weights (make-weights); a summary is refused (503) while FILE cannot be read\n\
  --help             print this help\n";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve on this address.
    Serve {
        /// The `host:port` to bind.
        listen: String,
        /// The `host:port` of the TLS listener, if any.
        tls_listen: Option<String>,
        /// The corpus weights file, if any.
        weights: Option<String>,
    },
    /// Print the usage and exit 0.
    Help,
}

/// Why the command line was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgsError {
    /// An argument that is not a known flag.
    #[error("unexpected argument `{arg}`")]
    Unexpected {
        /// The argument.
        arg: String,
    },
    /// A flag without its value.
    #[error("`{flag}` needs a value")]
    MissingValue {
        /// The flag.
        flag: &'static str,
    },
    /// A flag given twice.
    #[error("`{flag}` given more than once")]
    Repeated {
        /// The flag.
        flag: &'static str,
    },
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, ArgsError> {
    let mut listen = None;
    let mut tls_listen = None;
    let mut weights = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, slot): (&'static str, &mut Option<String>) = match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            a if a == "--listen" || a.starts_with("--listen=") => ("--listen", &mut listen),
            a if a == "--tls-listen" || a.starts_with("--tls-listen=") => ("--tls-listen", &mut tls_listen),
            a if a == "--weights" || a.starts_with("--weights=") => ("--weights", &mut weights),
            _ => return Err(ArgsError::Unexpected { arg }),
        };
        let value = match arg.split_once('=') {
            Some((_, v)) => v.to_owned(),
            None => args.next().ok_or(ArgsError::MissingValue { flag })?,
        };
        if slot.replace(value).is_some() {
            return Err(ArgsError::Repeated { flag });
        }
    }
    Ok(Command::Serve { listen: listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned()), tls_listen, weights })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, ArgsError> {
        parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_listen_forms() {
        let want = Command::Serve { listen: "0.0.0.0:1".into(), tls_listen: None, weights: None };
        assert_eq!(p(&["--listen", "0.0.0.0:1"]), Ok(want.clone()));
        assert_eq!(p(&["--listen=0.0.0.0:1"]), Ok(want));
        assert_eq!(p(&[]), Ok(Command::Serve { listen: DEFAULT_LISTEN.into(), tls_listen: None, weights: None }));
        assert_eq!(
            p(&["--tls-listen", "0.0.0.0:8443", "--listen=0.0.0.0:8080"]),
            Ok(Command::Serve {
                listen: "0.0.0.0:8080".into(),
                tls_listen: Some("0.0.0.0:8443".into()),
                weights: None
            })
        );
        assert_eq!(
            p(&["--weights=/models/terms.tsv"]),
            Ok(Command::Serve {
                listen: DEFAULT_LISTEN.into(),
                tls_listen: None,
                weights: Some("/models/terms.tsv".into())
            })
        );
        assert_eq!(p(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_args() {
        assert_eq!(p(&["--listen"]), Err(ArgsError::MissingValue { flag: "--listen" }));
        assert_eq!(p(&["--port", "1"]), Err(ArgsError::Unexpected { arg: "--port".into() }));
        assert_eq!(p(&["--listen=a", "--listen=b"]), Err(ArgsError::Repeated { flag: "--listen" }));
        assert_eq!(p(&["--tls-listen"]), Err(ArgsError::MissingValue { flag: "--tls-listen" }));
    }
}
