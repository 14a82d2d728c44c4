use super::*;
use crate::format::compress::Compression;

const MINIMAL: &str = "name: demo\nversion: 0.1.0\nsource_date_epoch: 1\nkernel: {path: k}\n\
        initrd:\n  init: i\n  command: [/app]\n  user: 1\n  files: [{src: a, dst: /app}]\n";

fn parse(text: &str) -> Result<Recipe, RecipeError> {
    Recipe::parse(text.as_bytes(), Path::new("r.yaml"))
}

#[test]
fn parses_minimal_recipe_with_defaults() {
    let r = parse(MINIMAL).unwrap();
    assert_eq!(r.compression().unwrap(), Compression::Gzip { level: 6 });
    assert_eq!(r.gid(), 1);
    assert!(!r.follow_symlinks);
}

#[test]
fn modes_accept_octal_ints_decimal_ints_and_strings() {
    for (text, want) in [("0o755", 0o755), ("493", 0o755), ("\"0755\"", 0o755), ("0640", 0o640), ("\"4755\"", 0o4755)] {
        let r = parse(&MINIMAL.replace("dst: /app}", &format!("dst: /app, mode: {text}}}"))).unwrap();
        assert_eq!(r.initrd.files[0].mode, Some(Mode(want)), "{text}");
    }
}

#[test]
fn rejects_mode_with_type_bits() {
    let err = parse(&MINIMAL.replace("dst: /app}", "dst: /app, mode: 0o100644}")).unwrap_err();
    assert!(err.to_string().contains("line 9"), "{err}");
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("bits outside 0o7777"));
}

#[test]
fn rejects_unknown_field_with_line_and_column() {
    let err = parse(&format!("{MINIMAL}colour: blue\n")).unwrap_err();
    assert_eq!(err.to_string(), "invalid recipe `r.yaml` at line 10, column 1");
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("unknown field `colour`"));
}

#[test]
fn rejects_invalid_utf8_with_position() {
    let mut bytes = MINIMAL.as_bytes().to_vec();
    bytes.splice(3..3, [0xff]);
    let err = Recipe::parse(&bytes, Path::new("r.yaml")).unwrap_err();
    assert_eq!(err.to_string(), "recipe `r.yaml` is not UTF-8: invalid byte at line 1, column 4");
}

#[test]
fn rejects_bad_name_and_levels() {
    assert!(matches!(
        parse(&MINIMAL.replace("name: demo", "name: Demo")),
        Err(RecipeError::Invalid { problem: Problem::BadIdentifier { field: "name", .. }, .. })
    ));
    let zstd = MINIMAL.replace("init: i", "init: i\n  compression: zstd\n  compression_level: 22");
    assert!(matches!(parse(&zstd), Err(RecipeError::Invalid { problem: Problem::BadCompressionLevel { .. }, .. })));
}

#[test]
fn rejects_root_payload_user_or_group() {
    let err = parse(&MINIMAL.replace("user: 1", "user: 0")).unwrap_err();
    assert!(err.to_string().contains("`initrd.user` is 0 (root)"), "{err}");
    let err = parse(&MINIMAL.replace("user: 1", "user: 1\n  group: 0")).unwrap_err();
    assert!(err.to_string().contains("`initrd.group` is 0 (root)"), "{err}");
}

#[test]
fn rejects_init_config_over_64_kib() {
    let big = format!("user: 1\n  env: {{BIG: {}}}", "x".repeat(70_000));
    let err = parse(&MINIMAL.replace("user: 1", &big)).unwrap_err();
    assert!(err.to_string().contains("the guest init reads at most 65536"), "{err}");
}

#[test]
fn rejects_command_outside_initrd() {
    let err = parse(&MINIMAL.replace("command: [/app]", "command: [/bin/sh]")).unwrap_err();
    assert!(err.to_string().contains("`/bin/sh`, which is not a file or symlink"), "{err}");
}
