//! The kernel command line, tokenized as the kernel does (`lib/cmdline.c` `next_arg`, `kernel/params.c`
//! `parse_args`), and the sealing rules for it.
//!
//! Tokens are separated by whitespace outside double quotes; `param="a b"` has the value `a b` (the quotes are
//! removed). A bare `--` ends the kernel's parameters: everything after it is passed to init as arguments.
//! Parameter names compare with `-` and `_` as equals (`parameq`).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use serde::Serialize;

/// One kernel parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Param {
    /// The name as written.
    pub name: String,
    /// The value after the first `=`, without surrounding quotes; `None` for a bare flag.
    pub value: Option<String>,
}

impl Param {
    /// The name with `-` replaced by `_`, as the kernel compares names.
    pub fn key(&self) -> String {
        self.name.replace('-', "_")
    }
}

/// A tokenized command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cmdline {
    /// Parameters before `--`, in order.
    pub params: Vec<Param>,
    /// Tokens after `--`, passed to init as `argv[1..]`.
    pub init_args: Vec<String>,
}

/// The kernel's `isspace` (`lib/ctype.c`): space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Splits off the next argument like `next_arg`, returning `(token, rest)`.
fn next_arg(args: &str) -> (Param, &str) {
    let (body, in_quote_start) = match args.strip_prefix('"') {
        Some(rest) => (rest, true),
        None => (args, false),
    };
    let mut in_quote = in_quote_start;
    let mut end = body.len();
    let mut equals = None;
    for (i, c) in body.char_indices() {
        if is_space(c) && !in_quote {
            end = i;
            break;
        }
        if equals.is_none() && c == '=' {
            equals = Some(i);
        }
        if c == '"' {
            in_quote = !in_quote;
        }
    }
    let token = body.get(..end).unwrap_or_default();
    let rest = body.get(end..).unwrap_or_default();
    // A leading quote's partner at the end of the token is dropped, as is a quote opening the value.
    let strip_end = |s: &str| s.strip_suffix('"').map(str::to_string).unwrap_or_else(|| s.to_string());
    let param = match equals {
        None if in_quote_start => Param { name: strip_end(token), value: None },
        None => Param { name: token.to_string(), value: None },
        Some(eq) => {
            let name = token.get(..eq).unwrap_or_default().to_string();
            let raw = token.get(eq + 1..).unwrap_or_default();
            let value = match raw.strip_prefix('"') {
                Some(v) => strip_end(v),
                None if in_quote_start => strip_end(raw),
                None => raw.to_string(),
            };
            Param { name, value: Some(value) }
        }
    };
    (param, rest.trim_start_matches(is_space))
}

/// Tokenizes a kernel command line.
pub fn parse(cmdline: &str) -> Cmdline {
    let mut out = Cmdline::default();
    let mut rest = cmdline.trim_start_matches(is_space);
    while !rest.is_empty() {
        let (param, next) = next_arg(rest);
        rest = next;
        if param.value.is_none() && param.name == "--" {
            out.init_args = rest.split(is_space).filter(|s| !s.is_empty()).map(str::to_string).collect();
            break;
        }
        out.params.push(param);
    }
    out
}

/// Renders parameters and init arguments back into a command line, quoting values that contain whitespace.
/// Returns `None` when a name or value cannot be written so that [`parse`] gives it back (a quote in it, an empty
/// name, whitespace in a name).
fn render(cmdline: &Cmdline) -> Option<String> {
    let mut words = Vec::new();
    for p in &cmdline.params {
        let bad_name = p.name.is_empty() || p.name.contains(|c| c == '"' || is_space(c)) || p.name == "--";
        if bad_name || p.value.as_deref().is_some_and(|v| v.contains('"')) {
            return None;
        }
        words.push(match &p.value {
            None => p.name.clone(),
            Some(v) if v.contains(is_space) => format!("{}=\"{v}\"", p.name),
            Some(v) => format!("{}={v}", p.name),
        });
    }
    if !cmdline.init_args.is_empty() {
        words.push("--".into());
        words.extend(cmdline.init_args.iter().cloned());
    }
    Some(words.join(" "))
}

/// Fuzzing entry point (`fuzz/fuzz_targets/cmdline.rs`): tokenizes arbitrary bytes (as lossy UTF-8), runs every
/// rule, and checks that a command line rendered from the tokens tokenizes to the same tokens.
pub fn fuzz_parse(data: &[u8]) {
    let parsed = parse(&String::from_utf8_lossy(data));
    for p in &parsed.params {
        let _ = judge(p);
    }
    let _ = panic_problem(&parsed.params);
    if let Some(line) = render(&parsed) {
        let again = parse(&line);
        assert_eq!(again, parsed, "`{line}` tokenizes differently from the tokens it was rendered from");
    }
}

/// How a rule judges a parameter's value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rule {
    /// Forbidden whatever its value.
    Forbidden,
    /// Allowed only with one of these values.
    OnlyValues(&'static [&'static str]),
    /// Forbidden with one of these values.
    ForbiddenValues(&'static [&'static str]),
}

/// Command-line rules: (parameter key with `_` for `-`, rule, reason). One table, documented in
/// `kernel-config/README.md`.
pub(crate) const RULES: &[(&str, Rule, &str)] = &[
    ("init", Rule::OnlyValues(&["/init"]), "only the builder's sealed init may run as PID 1"),
    ("rdinit", Rule::OnlyValues(&["/init"]), "only the builder's sealed init may run as PID 1"),
    ("single", Rule::Forbidden, "asks init for a single-user (root shell) boot"),
    ("emergency", Rule::Forbidden, "asks init for an emergency root shell"),
    ("rescue", Rule::Forbidden, "asks init for a rescue root shell"),
    ("s", Rule::Forbidden, "runlevel S: single-user root shell"),
    ("S", Rule::Forbidden, "runlevel S: single-user root shell"),
    ("1", Rule::Forbidden, "runlevel 1: single-user root shell"),
    ("rd.break", Rule::Forbidden, "drops to an initramfs shell"),
    ("rd.shell", Rule::Forbidden, "offers an initramfs shell on failure"),
    ("rd.emergency", Rule::Forbidden, "drops to an initramfs emergency shell"),
    ("systemd.debug_shell", Rule::Forbidden, "starts a root shell on tty9"),
    ("rd.systemd.debug_shell", Rule::Forbidden, "starts a root shell on tty9 in the initramfs"),
    ("systemd.unit", Rule::ForbiddenValues(&["rescue.target", "emergency.target"]), "boots into a root shell target"),
    (
        "rd.systemd.unit",
        Rule::ForbiddenValues(&["rescue.target", "emergency.target"]),
        "boots into a root shell target",
    ),
    ("kgdboc", Rule::Forbidden, "attaches the kernel debugger to a host-controlled console"),
    ("kgdbwait", Rule::Forbidden, "stops the boot until a host-side debugger attaches"),
    ("kgdbdbgp", Rule::Forbidden, "attaches the kernel debugger to the USB debug port"),
    ("kgdbcon", Rule::Forbidden, "sends kernel messages to the debugger"),
    ("ekgdboc", Rule::Forbidden, "attaches the kernel debugger to an early console"),
    (
        "earlyprintk",
        Rule::Forbidden,
        "every early console (serial, ttyS, vga, efi, dbgp, xdbc) is emulated by the host",
    ),
    ("nokaslr", Rule::Forbidden, "disables kernel address randomization"),
    ("mem_encrypt", Rule::ForbiddenValues(&["off"]), "disables memory encryption"),
    ("iomem", Rule::ForbiddenValues(&["relaxed"]), "lets /dev/mem reach driver-owned ranges"),
    ("sysrq_always_enabled", Rule::Forbidden, "enables SysRq keys typed by the host on the console"),
    (
        "lockdown",
        Rule::OnlyValues(&["confidentiality"]),
        "only confidentiality lockdown keeps root out of kernel memory",
    ),
];

/// Bare words that init interprets as a request for a shell when they reach it as arguments (after `--`).
pub(crate) const INIT_ARG_RULES: &[(&str, &str)] = &[
    ("single", "single-user root shell"),
    ("emergency", "emergency root shell"),
    ("rescue", "rescue root shell"),
    ("s", "runlevel S: single-user root shell"),
    ("S", "runlevel S: single-user root shell"),
    ("1", "runlevel 1: single-user root shell"),
    ("-s", "single-user root shell"),
    ("-b", "emergency root shell"),
];

/// Judges one parameter against [`RULES`]; returns the violated rule's reason.
pub(crate) fn judge(param: &Param) -> Option<(&'static str, String)> {
    let key = param.key();
    let (_, rule, reason) = RULES.iter().find(|(name, _, _)| name.replace('-', "_") == key)?;
    let value = param.value.as_deref();
    let bad = match rule {
        Rule::Forbidden => true,
        Rule::OnlyValues(ok) => !value.is_some_and(|v| ok.contains(&v)),
        Rule::ForbiddenValues(bad) => value.is_some_and(|v| bad.contains(&v)),
    };
    let written = match value {
        Some(v) => format!("{}={v}", param.name),
        None => param.name.clone(),
    };
    bad.then_some((*reason, written))
}

/// What `panic=` does: the kernel reboots after N seconds (N > 0), at once (N < 0), or waits forever (0).
pub(crate) fn panic_problem(params: &[Param]) -> Option<String> {
    // The last occurrence wins (`panic` is a core_param).
    let Some(param) = params.iter().rev().find(|p| p.key() == "panic") else {
        return Some("`panic=` is not set: after a panic the guest would hang instead of rebooting or powering off (use `panic=-1` or a positive number of seconds)".into());
    };
    match param.value.as_deref().map(str::parse::<i64>) {
        Some(Ok(0)) => Some(
            "`panic=0` waits forever after a panic: use `panic=-1` (reboot at once) or a positive number of seconds"
                .into(),
        ),
        Some(Ok(_)) => None,
        _ => Some(format!(
            "`{}` is not an integer number of seconds",
            param.value.as_deref().map_or(param.name.clone(), |v| format!("panic={v}"))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, value: Option<&str>) -> Param {
        Param { name: name.into(), value: value.map(Into::into) }
    }

    #[test]
    fn tokenizes_quotes_and_separator_like_the_kernel() {
        let c = parse("  console=ttyS0 dyndbg=\"file a.c +p\" quiet \"x y\" a=\"b --\" -- single  foo=bar ");
        assert_eq!(
            c.params,
            vec![
                p("console", Some("ttyS0")),
                p("dyndbg", Some("file a.c +p")),
                p("quiet", None),
                p("x y", None),
                p("a", Some("b --")),
            ]
        );
        assert_eq!(c.init_args, vec!["single".to_string(), "foo=bar".to_string()]);
    }

    #[test]
    fn separator_with_value_is_a_parameter() {
        let c = parse("--=x panic=5");
        assert_eq!(c.params, vec![p("--", Some("x")), p("panic", Some("5"))]);
        assert!(c.init_args.is_empty());
    }

    #[test]
    fn judges_names_with_dash_underscore_equivalence() {
        assert!(judge(&p("systemd.debug-shell", None)).is_some());
        assert!(judge(&p("systemd.debug_shell", Some("1"))).is_some());
        assert!(judge(&p("rdinit", Some("/init"))).is_none());
        assert_eq!(judge(&p("init", Some("/bin/sh"))).unwrap().1, "init=/bin/sh");
        assert!(judge(&p("init", None)).is_some());
        assert!(judge(&p("systemd.unit", Some("multi-user.target"))).is_none());
        assert!(judge(&p("systemd.unit", Some("emergency.target"))).is_some());
        assert!(judge(&p("lockdown", Some("integrity"))).is_some());
        assert!(judge(&p("console", Some("ttyS0"))).is_none());
        assert!(judge(&p("debug", None)).is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_plain_tokens_round_trip(words in proptest::collection::vec("[a-z_.]{1,8}(=[a-z0-9,]{0,6})?", 0..8)) {
            let parsed = parse(&words.join(" \t "));
            let rebuilt: Vec<String> = parsed.params.iter().map(|p| match &p.value {
                Some(v) => format!("{}={v}", p.name),
                None => p.name.clone(),
            }).collect();
            proptest::prop_assert_eq!(rebuilt, words);
        }

        #[test]
        fn rendered_tokens_tokenize_the_same(text in "([a-z_=\" \t-]|--){0,60}") {
            fuzz_parse(text.as_bytes());
        }

        #[test]
        fn fuzz_entry_point_holds_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            fuzz_parse(&bytes);
        }

        #[test]
        fn never_panics_on_arbitrary_text(text in ".{0,80}") {
            let parsed = parse(&text);
            for p in &parsed.params {
                let _ = judge(p);
            }
            let _ = panic_problem(&parsed.params);
        }
    }

    #[test]
    fn renders_quoted_values_and_init_args() {
        let parsed = parse("a=\"x y\" b c= -- single x");
        assert_eq!(render(&parsed).unwrap(), "a=\"x y\" b c= -- single x");
        assert_eq!(render(&parse("a\"b")), None);
        fuzz_parse(b"a=\"x y\" b c= -- single x");
    }

    #[test]
    fn requires_panic_to_reboot() {
        assert!(panic_problem(&parse("panic=-1").params).is_none());
        assert!(panic_problem(&parse("panic=0 panic=10").params).is_none());
        assert!(panic_problem(&parse("panic=10 panic=0").params).unwrap().contains("waits forever"));
        assert!(panic_problem(&parse("quiet").params).unwrap().contains("not set"));
        assert!(panic_problem(&parse("panic=soon").params).unwrap().contains("`panic=soon` is not an integer"));
    }
}
