//! Command-line arguments: `--listen ADDR` and `--help`.

/// Address used when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Usage text printed by `--help` and on usage errors.
pub const USAGE: &str = "usage: summarize-server [--listen ADDR]\n\n\
  --listen ADDR  address to listen on (default 127.0.0.1:8080; use 0.0.0.0:8080 in a VM)\n\
  --help         print this help\n";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve on this address.
    Serve {
        /// The `host:port` to bind.
        listen: String,
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
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--help" | "-h" => return Ok(Command::Help),
            "--listen" => args.next().ok_or(ArgsError::MissingValue { flag: "--listen" })?,
            _ => match arg.strip_prefix("--listen=") {
                Some(v) => v.to_owned(),
                None => return Err(ArgsError::Unexpected { arg }),
            },
        };
        if listen.replace(value).is_some() {
            return Err(ArgsError::Repeated { flag: "--listen" });
        }
    }
    Ok(Command::Serve { listen: listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, ArgsError> {
        parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_listen_forms() {
        let want = Command::Serve { listen: "0.0.0.0:1".into() };
        assert_eq!(p(&["--listen", "0.0.0.0:1"]), Ok(want.clone()));
        assert_eq!(p(&["--listen=0.0.0.0:1"]), Ok(want));
        assert_eq!(p(&[]), Ok(Command::Serve { listen: DEFAULT_LISTEN.into() }));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn rejects_bad_args() {
        assert_eq!(p(&["--listen"]), Err(ArgsError::MissingValue { flag: "--listen" }));
        assert_eq!(p(&["--port", "1"]), Err(ArgsError::Unexpected { arg: "--port".into() }));
        assert_eq!(p(&["--listen=a", "--listen=b"]), Err(ArgsError::Repeated { flag: "--listen" }));
    }
}
