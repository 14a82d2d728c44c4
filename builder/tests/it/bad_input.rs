//! Bad recipes, inputs and outputs: each is refused with a message naming what is wrong, exit code 1 (2 for usage
//! errors), no panic, and no output directory.

use crate::util::*;

/// Asserts the build failed with exit 1, mentions every needle, and left no output or staging directory.
fn refused(tree: &Tree, run: Run, needles: &[&str]) {
    run.fails(1, needles);
    assert!(!tree.path("out").exists(), "a failed build left an output directory");
    let staging: Vec<String> = tree.list("").into_iter().filter(|n| n.starts_with(".cvmforge")).collect();
    assert!(staging.is_empty(), "a failed build left {staging:?}");
}

fn with(edit: (&str, &str)) -> String {
    assert!(STANDARD_RECIPE.contains(edit.0), "test bug: `{}` is not in the recipe", edit.0);
    STANDARD_RECIPE.replace(edit.0, edit.1)
}

#[test]
fn rejects_missing_input_file() {
    let tree = Tree::standard();
    std::fs::remove_file(tree.path("src/inputs/server")).unwrap();
    let run = tree.build(&[]);
    refused(&tree, run, &["input `file:/usr/bin/server`: file `inputs/server` not found"]);
    assert!(!tree.path("src/recipe.lock").exists(), "a failed build wrote the lock file");
}

#[test]
fn rejects_directory_where_a_file_is_expected() {
    let tree = Tree::standard();
    std::fs::remove_file(tree.path("src/data/model.txt")).unwrap();
    std::fs::create_dir(tree.path("src/data/model.txt")).unwrap();
    let run = tree.build(&[]);
    refused(&tree, run, &["input `file:/srv/model.txt`: `data/model.txt` is a directory, expected a regular file"]);
}

#[test]
fn rejects_destination_with_dotdot() {
    let tree = Tree::standard();
    tree.recipe(&with(("dst: /srv/model.txt", "dst: /srv/../etc/passwd")));
    let run = tree.build(&[]);
    refused(&tree, run, &["`initrd.files[1].dst` is `/srv/../etc/passwd`: `..` components are not allowed"]);
}

#[test]
fn rejects_relative_destination() {
    let tree = Tree::standard();
    tree.recipe(&with(("dst: /srv/model.txt", "dst: ../model.txt")));
    let run = tree.build(&[]);
    refused(&tree, run, &["`initrd.files[1].dst` is `../model.txt`: destinations must be absolute paths"]);
}

#[test]
fn rejects_destination_with_nul_escape() {
    let tree = Tree::standard();
    tree.recipe(&with(("dst: /srv/model.txt", "dst: \"/srv/model\\0.txt\"")));
    let run = tree.build(&[]);
    refused(&tree, run, &["`initrd.files[1].dst`", "control characters (including NUL) are not allowed"]);
}

#[test]
fn rejects_two_entries_with_the_same_destination() {
    let tree = Tree::standard();
    tree.recipe(&with(("dst: /srv/model.txt", "dst: /usr/bin/server")));
    let run = tree.build(&[]);
    refused(
        &tree,
        run,
        &["`initrd.files[1] (dst /usr/bin/server)` conflicts with `initrd.files[0] (dst /usr/bin/server)`: both claim `/usr/bin/server`"],
    );
}

#[test]
fn rejects_file_where_a_directory_is_implied() {
    let tree = Tree::standard();
    tree.recipe(&with(("dst: /srv/model.txt", "dst: /usr/bin/server/model.txt")));
    let run = tree.build(&[]);
    refused(
        &tree,
        run,
        &["`directory /usr/bin/server implied by initrd.files[1] (dst /usr/bin/server/model.txt)` conflicts with `initrd.files[0] (dst /usr/bin/server)`"],
    );
}

#[test]
fn rejects_entries_that_collide_with_builtin_paths() {
    for (dst, builtin) in [
        ("/init", "initrd.init (installed as /init)"),
        ("/dev/console", "built-in /dev/console"),
        ("/etc/cvmforge/init.json", "built-in /etc/cvmforge/init.json"),
    ] {
        let tree = Tree::standard();
        tree.recipe(&with(("dst: /srv/model.txt", &format!("dst: {dst}"))));
        let run = tree.build(&[]);
        refused(&tree, run, &[&format!("conflicts with `{builtin}`: both claim `{dst}`")]);
    }
}

#[test]
fn rejects_symlinked_input_outside_the_tree_unless_follow_symlinks() {
    let tree = Tree::standard();
    tree.write("outside/secret", b"not part of the recipe's tree\n");
    std::fs::remove_file(tree.path("src/data/model.txt")).unwrap();
    std::os::unix::fs::symlink("../../outside/secret", tree.path("src/data/model.txt")).unwrap();
    let run = tree.build(&[]);
    refused(
        &tree,
        run,
        &[
            "input `file:/srv/model.txt`: `data/model.txt` resolves to",
            "outside/secret`, outside the recipe's tree",
            "hint:",
        ],
    );
    tree.recipe(&with(("source_date_epoch", "follow_symlinks: true\nsource_date_epoch")));
    tree.build(&[]).ok();
    let entries = parse_newc(&gunzip(&tree.read("out/initrd.img")));
    assert_eq!(entries.iter().find(|e| e.name == "srv/model.txt").unwrap().data, b"not part of the recipe's tree\n");
}

#[test]
fn rejects_dotdot_input_outside_the_tree_unless_root_covers_it() {
    let tree = Tree::standard();
    tree.write("shared/model.txt", b"shared\n");
    tree.recipe(&with(("src: data/model.txt", "src: ../shared/model.txt")));
    let run = tree.build(&[]);
    refused(&tree, run, &["`../shared/model.txt` resolves to"]);
    tree.recipe(
        &with(("src: data/model.txt", "src: ../shared/model.txt"))
            .replace("version: 0.1.0", "version: 0.1.0\nroot: .."),
    );
    tree.build(&[]).ok();
    let m: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!(m["recipe"]["path"], "src/recipe.yaml", "the recipe path is relative to `root:`");
}

#[test]
fn rejects_recipe_that_is_not_utf8() {
    let tree = Tree::standard();
    let mut bytes = STANDARD_RECIPE.as_bytes().to_vec();
    let at = STANDARD_RECIPE.find("model.txt, mode").unwrap();
    bytes.splice(at..at, [0xff, 0xfe]);
    tree.write("src/recipe.yaml", &bytes);
    let run = tree.build(&[]);
    refused(&tree, run, &["recipe `src/recipe.yaml` is not UTF-8: invalid byte at line 15, column 39"]);
}

#[test]
fn rejects_recipe_file_name_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let tree = Tree::standard();
    let name = std::ffi::OsStr::from_bytes(b"src/r\xff.yaml");
    std::fs::rename(tree.path("src/recipe.yaml"), tree.dir.path().join(name)).unwrap();
    let out = cvmforge().current_dir(tree.dir.path()).arg("build").arg(name).args(["-o", "out"]).output().unwrap();
    refused(&tree, Run::from_output(out), &["is not UTF-8; the manifest records it as text"]);
}

#[test]
fn rejects_empty_recipe() {
    let tree = Tree::standard();
    tree.recipe("# nothing here\n\n");
    let run = tree.build(&[]);
    refused(&tree, run, &["recipe `src/recipe.yaml` is empty"]);
}

#[test]
fn rejects_recipe_that_is_not_yaml() {
    let tree = Tree::standard();
    tree.recipe("name: [unclosed\n  version: {\n");
    let run = tree.build(&[]);
    refused(&tree, run, &["invalid recipe `src/recipe.yaml` at line", "caused by:"]);
    tree.recipe("just some text\n");
    let run = tree.build(&[]);
    refused(&tree, run, &["invalid recipe `src/recipe.yaml`", "invalid type: string"]);
}

#[test]
fn rejects_unknown_field_naming_line_and_column() {
    let tree = Tree::standard();
    tree.recipe(&with(("  user: 65534\n", "  user: 65534\n  users: [root]\n")));
    let run = tree.build(&[]);
    refused(&tree, run, &["invalid recipe `src/recipe.yaml` at line 13, column 3", "unknown field `users`"]);
}

#[test]
fn rejects_mode_outside_0o7777() {
    let tree = Tree::standard();
    tree.recipe(&with(("mode: 0o640", "mode: 0o100640")));
    let run = tree.build(&[]);
    refused(&tree, run, &["at line 15", "mode 0o100640 has bits outside 0o7777"]);
}

#[test]
fn rejects_changed_input_when_locked() {
    let tree = Tree::standard();
    tree.run(&["build", "src/recipe.yaml", "-o", "first"]).ok();
    let lock = tree.read("src/recipe.lock");
    let old = sha256_hex(&tree.read("src/inputs/server"));
    tree.write("src/inputs/server", b"\x7fELF a different server\n");
    let new = sha256_hex(b"\x7fELF a different server\n");
    let run = tree.build(&["--locked"]);
    refused(
        &tree,
        run,
        &[
            &format!("input `file:/usr/bin/server` (`inputs/server`): expected sha256 {old}, actual sha256 {new}"),
            "hint:",
        ],
    );
    assert_eq!(tree.read("src/recipe.lock"), lock, "--locked must not rewrite the lock");
}

#[test]
fn rejects_input_missing_from_or_extra_to_the_lock() {
    let tree = Tree::standard();
    tree.run(&["build", "src/recipe.yaml", "-o", "first"]).ok();
    tree.recipe(&with(("firmware:\n  snp: inputs/OVMF.amdsev.fd\n", "firmware:\n  tdx: inputs/OVMF.amdsev.fd\n")));
    let run = tree.build(&["--locked"]);
    refused(
        &tree,
        run,
        &[
            "input `firmware:snp` is in the lock file",
            "input `firmware:tdx` (`inputs/OVMF.amdsev.fd`) is not in the lock file",
        ],
    );
}

#[test]
fn rejects_locked_build_without_a_lock_file() {
    let tree = Tree::standard();
    let run = tree.build(&["--locked"]);
    refused(&tree, run, &["lock file `src/recipe.lock` does not exist", "hint: build once without --locked"]);
}

#[test]
fn rejects_kernel_that_is_not_a_bzimage() {
    let tree = Tree::standard();
    tree.write("src/inputs/vmlinuz", &random_bytes(4096, 9).iter().map(|b| b & 0x7f).collect::<Vec<_>>());
    let run = tree.build(&[]);
    refused(
        &tree,
        run,
        &["kernel `inputs/vmlinuz` cannot be used", "expected the setup header magic `HdrS` at offset 0x202"],
    );
}

#[test]
fn rejects_kernel_with_an_old_boot_protocol() {
    let tree = Tree::standard();
    tree.write("src/inputs/vmlinuz", &fake_kernel(0x0204, 100));
    let run = tree.build(&[]);
    refused(&tree, run, &["bzImage boot protocol 2.04 is too old: cvmforge needs 2.06 or newer"]);
}

#[test]
fn rejects_existing_non_empty_output_without_force() {
    let tree = Tree::standard();
    tree.write("out/keep-me", b"precious");
    tree.build(&[]).fails(1, &["output directory `out` exists and is not empty", "hint: pass --force"]);
    assert_eq!(tree.list("out"), ["keep-me"]);
    assert_eq!(tree.read("out/keep-me"), b"precious");
}

/// Issue 11, item 3: `--force` deletes only what cvmforge wrote. A directory holding anything else (here the ID
/// signing key beside an earlier output) is refused, the foreign file is named, and nothing is deleted.
#[test]
fn issue11_force_refuses_a_directory_cvmforge_did_not_write() {
    let tree = Tree::standard();
    tree.write("out/id-key.pem", b"-----BEGIN EC PRIVATE KEY-----");
    tree.build(&["--force"])
        .fails(1, &["refusing to replace `out` with --force", "no readable cvmforge `manifest.json`"]);
    assert_eq!(tree.read("out/id-key.pem"), b"-----BEGIN EC PRIVATE KEY-----");

    // An earlier output with a foreign file added to it: still refused, naming the file.
    let tree = Tree::standard();
    tree.build(&[]).ok();
    tree.write("out/id-key.pem", b"key");
    tree.build(&["--force"]).fails(1, &["`id-key.pem` is not an output its manifest lists"]);
    assert_eq!(tree.read("out/id-key.pem"), b"key");

    // A manifest that is a symlink to a real manifest elsewhere does not make a directory ours.
    let tree = Tree::standard();
    tree.build(&[]).ok();
    std::fs::rename(tree.path("out"), tree.path("elsewhere")).unwrap();
    std::fs::create_dir(tree.path("out")).unwrap();
    std::os::unix::fs::symlink(tree.path("elsewhere/manifest.json"), tree.path("out/manifest.json")).unwrap();
    tree.write("out/notes.txt", b"mine");
    tree.build(&["--force"]).fails(1, &["is a symbolic link"]);
    assert_eq!(tree.read("out/notes.txt"), b"mine");

    // A manifest of another schema (or none) is not recognised either.
    let tree = Tree::standard();
    tree.write("out/manifest.json", b"{\"schema\": \"https://example.invalid/other\"}");
    tree.build(&["--force"]).fails(1, &["is not a cvmforge manifest"]);
    assert!(tree.path("out/manifest.json").exists());
}

#[test]
fn rejects_command_that_is_not_in_the_initrd() {
    let tree = Tree::standard();
    tree.recipe(&with(("command: [\"/usr/bin/server\"", "command: [\"/bin/sh\"")));
    let run = tree.build(&[]);
    refused(&tree, run, &["`initrd.command[0]` is `/bin/sh`, which is not a file or symlink in the initrd"]);
}

#[test]
fn missing_recipe_is_a_usage_error() {
    let tree = Tree::new();
    tree.run(&["build", "nope.yaml", "-o", "out"]).fails(2, &["recipe `nope.yaml` does not exist"]);
    assert!(!tree.path("out").exists());
}

#[test]
fn rejects_force_that_would_delete_the_recipe_tree() {
    let tree = Tree::standard();
    tree.run(&["build", "src/recipe.yaml", "-o", "src", "--force"])
        .fails(1, &["refusing to replace `src` with --force", "no readable cvmforge `manifest.json`"]);
    assert_eq!(tree.read("src/recipe.yaml"), STANDARD_RECIPE.as_bytes());
    assert!(tree.path("src/inputs/vmlinuz").exists());
    let run = tree.run(&["build", "src/recipe.yaml", "-o", ".", "--force"]);
    run.fails(1, &["output path `.` must end in a directory name"]);
}

/// A recipe is UTF-8 text, so it cannot name a file whose name is not UTF-8; a YAML `\xNN` escape is a Unicode code
/// point, not a raw byte. `\xff` is `ÿ` (UTF-8 c3 bf); `\x85` is a C1 control character and is refused.
#[test]
fn yaml_hex_escapes_are_code_points_not_bytes() {
    let tree = Tree::standard();
    tree.recipe(&with(("dst: /srv/model.txt", "dst: \"/srv/model\\xff.txt\"")));
    tree.build(&[]).ok();
    let entries = parse_newc(&gunzip(&tree.read("out/initrd.img")));
    assert!(entries.iter().any(|e| e.name.as_bytes() == b"srv/model\xc3\xbf.txt"));
    tree.recipe(&with(("dst: /srv/model.txt", "dst: \"/srv/model\\x85.txt\"")));
    tree.run(&["build", "src/recipe.yaml", "-o", "out2"]).fails(1, &["control characters"]);
}

#[test]
fn rejects_recipe_named_like_its_lock_file() {
    let tree = Tree::standard();
    std::fs::rename(tree.path("src/recipe.yaml"), tree.path("src/recipe.lock")).unwrap();
    let run = tree.run(&["build", "src/recipe.lock", "-o", "out"]);
    refused(&tree, run, &["ends in `.lock`; its lock file would overwrite it"]);
    assert_eq!(tree.read("src/recipe.lock"), STANDARD_RECIPE.as_bytes());
}

/// Issue 11, item 13: an SNP shape with no memory is refused at its field, like a TDX shape.
#[test]
fn issue11_rejects_snp_shape_with_zero_memory() {
    let tree = Tree::standard();
    tree.recipe(&format!("{STANDARD_RECIPE}measure:\n  snp:\n    - {{vcpus: 1, vcpu_type: EPYC-v4, memory: \"0\"}}\n"));
    let run = tree.build(&[]);
    // Issue 10: refused while the recipe is read, at the value's line and column.
    refused(
        &tree,
        run,
        &["measure.snp[0].memory: `0`: expected a non-zero size such as `2G` or `4096M` at line 26 column 46"],
    );
}

/// Issue 11, item 13: a recipe that starts with a UTF-8 byte-order mark (as some editors write) is read as YAML
/// allows, instead of failing with a misleading "missing field".
#[test]
fn issue11_accepts_a_recipe_with_a_byte_order_mark() {
    let tree = Tree::standard();
    tree.write("src/recipe.yaml", format!("\u{feff}{STANDARD_RECIPE}").as_bytes());
    tree.build(&[]).ok();
    let manifest: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!(manifest["recipe"]["name"], "demo");
}

/// Issue 11, item 7: outputs and lock are one transaction. A lock that cannot be written (here its path is a
/// directory; a read-only recipe directory or a full disk fail the same step) fails the build before any output
/// appears, leaves nothing behind, and a rerun works once the cause is gone.
#[test]
fn issue11_unwritable_lock_leaves_no_output_and_a_rerun_works() {
    let tree = Tree::standard();
    std::fs::create_dir(tree.path("src/recipe.lock")).unwrap();
    let run = tree.build(&[]);
    refused(&tree, run, &["recipe.lock", "exists and is not a regular file"]);
    assert!(tree.list("src").iter().all(|n| !n.starts_with(".cvmforge-lock-")), "{:?}", tree.list("src"));
    std::fs::remove_dir(tree.path("src/recipe.lock")).unwrap();
    tree.build(&[]).ok();
    assert!(tree.path("out/manifest.json").is_file() && tree.path("src/recipe.lock").is_file());
}

/// Issue 11, item 11: a small recipe cannot ask for an unbounded number of measured shapes (150 aliased `1-1024`
/// ranges took 2.3 GB and wrote a 305 MB manifest that `verify` refused). It is refused before any digest is computed,
/// with the limit that readers apply too.
#[test]
fn issue11_rejects_more_measured_shapes_than_a_manifest_may_hold() {
    let tree = Tree::standard();
    let shape = "    - &s {vcpus: \"1-1024\", vcpu_type: EPYC-v4}\n";
    let more: String = (0..150).map(|_| "    - *s\n").collect();
    tree.recipe(&format!("{STANDARD_RECIPE}measure:\n  snp:\n{shape}{more}"));
    let started = std::time::Instant::now();
    let run = tree.build(&[]);
    refused(&tree, run, &["the recipe asks for 154624 measured shapes", "at most 4096 are allowed"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "refused before measuring");
}

fn leftovers(tree: &Tree) -> Vec<String> {
    tree.list("").into_iter().filter(|n| n.starts_with(".cvmforge")).collect()
}

/// Issue 11, item 8: SIGINT or SIGTERM during a build removes its staging directory; the exit status says which
/// signal; nothing is left behind.
#[test]
fn issue11_interrupted_build_cleans_up_after_itself() {
    for (signal, status) in [(nix::sys::signal::Signal::SIGTERM, 143), (nix::sys::signal::Signal::SIGINT, 130)] {
        let tree = Tree::standard();
        let mut child = crate::util::paused_build(&tree);
        assert_eq!(leftovers(&tree).len(), 1, "the staging directory exists while paused");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(exit.code(), Some(status), "{signal}");
        assert!(leftovers(&tree).is_empty(), "{signal}: {:?}", leftovers(&tree));
        assert!(!tree.path("out").exists());
    }
}

/// Issue 11, item 8: SIGKILL cannot be cleaned up after; the next build removes what the dead build left, says so,
/// and leaves nothing of its own.
#[test]
fn issue11_next_build_removes_what_a_killed_build_left() {
    let tree = Tree::standard();
    let mut child = crate::util::paused_build(&tree);
    child.kill().unwrap();
    child.wait().unwrap();
    let left = leftovers(&tree);
    assert_eq!(left.len(), 1, "{left:?}");
    let run = tree.build(&[]).ok();
    assert!(
        run.stderr.contains(&format!("removed `./{}`, left by an earlier build that was killed", left[0])),
        "{}",
        run.stderr
    );
    assert!(leftovers(&tree).is_empty(), "{:?}", leftovers(&tree));
}
