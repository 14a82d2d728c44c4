//! `cvmforge build` with the sealing step wired in: kernel modules staged into the initrd and listed in init.json,
//! the policy report in the manifest, and strict mode failing with every violation and its fix.

use std::io::Write;

use crate::util::{gunzip, parse_newc, unzstd, Tree, STANDARD_RECIPE, UNSEALED_OPT_OUT};

const RELEASE: &str = "6.1.0-test-amd64";
const SEALED_CONFIG: &str = include_str!("../../../kernel-config/sealed-guest.config");

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A bzImage with a release string and `config` embedded as IKCONFIG.
fn kernel(config: &str) -> Vec<u8> {
    let mut vmlinux = b"kernel text IKCFG_ST".to_vec();
    vmlinux.extend_from_slice(&gz(config.as_bytes()));
    vmlinux.extend_from_slice(b"IKCFG_ED more kernel");
    cvmforge::format::bzimage::testing::bzimage(RELEASE, &gz(&vmlinux))
}

fn sev_guest_ko() -> Vec<u8> {
    let vermagic = format!("vermagic={RELEASE} SMP preempt mod_unload modversions ");
    cvmforge::format::elf::testing::kernel_module(&["license=GPL", "depends=", "name=sev_guest", &vermagic])
}

fn sealed_tree(extra_recipe: &str) -> Tree {
    let tree = Tree::standard();
    tree.write("src/inputs/vmlinuz", &kernel(&SEALED_CONFIG.replace("CONFIG_SEV_GUEST=y", "CONFIG_SEV_GUEST=m")));
    tree.write(
        &format!("src/kmod/lib/modules/{RELEASE}/kernel/drivers/virt/coco/sev-guest/sev-guest.ko"),
        &sev_guest_ko(),
    );
    let recipe = STANDARD_RECIPE.replace(UNSEALED_OPT_OUT, "").replace(
        "  cmdline: \"console=ttyS0 panic=-1\"\n",
        "  cmdline: \"console=ttyS0 panic=-1\"\n  modules: {tree: kmod, load: [sev-guest]}\n",
    );
    tree.recipe(&format!("{recipe}{extra_recipe}"));
    tree
}

fn archive(tree: &Tree) -> Vec<crate::util::CpioEntry> {
    let bytes = tree.read("out/initrd.img");
    parse_newc(&if bytes.starts_with(b"\x1f\x8b") { gunzip(&bytes) } else { unzstd(&bytes) })
}

#[test]
fn strict_build_stages_modules_and_records_the_policy() {
    let tree = sealed_tree("sealing: {strict: true}\n");
    tree.build(&[]).ok();
    let entries = archive(&tree);
    let dest = format!("lib/modules/{RELEASE}/kernel/drivers/virt/coco/sev-guest/sev-guest.ko");
    let module = entries.iter().find(|e| e.name == dest).unwrap();
    assert_eq!((module.data.clone(), module.mode), (sev_guest_ko(), 0o100644));
    let init_json = entries.iter().find(|e| e.name == "etc/cvmforge/init.json").unwrap();
    let init: serde_json::Value = serde_json::from_slice(&init_json.data).unwrap();
    assert_eq!(init["modules"], serde_json::json!([format!("/{dest}")]));

    let m: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!(m["sealing"]["verdict"], "sealed", "{:#}", m["sealing"]);
    assert_eq!(m["sealing"]["kernel_config"]["source"], "ikconfig");
    assert_eq!(m["sealing"]["modules"]["modules"][0]["name"], "sev_guest");
    assert_eq!(m["sealing"]["strict"], true);
}

#[test]
fn rejects_unwaived_shell_in_strict_mode_with_the_fix() {
    let tree = sealed_tree("");
    let recipe = String::from_utf8(tree.read("src/recipe.yaml")).unwrap();
    tree.recipe(&recipe.replace(
        "  symlinks: [{path: /bin/server, target: /usr/bin/server}]",
        "  symlinks: [{path: /bin/sh, target: /usr/bin/server}]",
    ));
    // Issue 11, item 1: strict is the default. The build fails, lists every violation with its fix, writes nothing.
    tree.build(&[]).fails(
        1,
        &[
            "the image is not sealed: 1 policy violation(s) and strict mode is on",
            "fix: remove `/bin/sh` from the initrd, or add a waiver `{item: sh, reason: ...}` under sealing.waivers",
        ],
    );
    assert!(!tree.path("out").exists(), "a refused build writes nothing");
    // The explicit opt-out builds, warns loudly, and records the verdict and `strict: false`.
    let run = tree.build(&["--allow-unsealed"]).ok();
    assert!(
        run.stderr.contains("warning: THIS IMAGE IS NOT SEALED: 1 policy violation(s) were allowed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("warning: not sealed: `sh`: `/bin/sh` has the name of a forbidden program"),
        "{}",
        run.stderr
    );
    let m: serde_json::Value = serde_json::from_slice(&tree.read("out/manifest.json")).unwrap();
    assert_eq!((&m["sealing"]["verdict"], &m["sealing"]["strict"]), (&"violations".into(), &false.into()));
    // The same through the recipe.
    tree.recipe(&format!("{}sealing: {{strict: false}}\n", String::from_utf8(tree.read("src/recipe.yaml")).unwrap()));
    let run = tree.build(&["--force"]).ok();
    assert!(run.stderr.contains("warning: THIS IMAGE IS NOT SEALED"), "{}", run.stderr);
    // --strict overrides the recipe's opt-out.
    tree.build(&["--strict", "--force"]).fails(
        1,
        &[
            "the image is not sealed: 1 policy violation(s) and strict mode is on",
            "fix: remove `/bin/sh` from the initrd, or add a waiver `{item: sh, reason: ...}` under sealing.waivers",
        ],
    );
}

#[test]
fn rejects_dynamic_payload_naming_its_loader() {
    let tree = sealed_tree("");
    tree.write("src/inputs/server", &cvmforge::format::elf::testing::executable(Some("/lib64/ld-linux-x86-64.so.2")));
    tree.build(&[])
        .fails(1, &["`/usr/bin/server` is dynamically linked and needs the interpreter `/lib64/ld-linux-x86-64.so.2`"]);
}

#[test]
fn rejects_dynamic_init() {
    let tree = sealed_tree("");
    tree.write(
        "src/inputs/guest-init",
        &cvmforge::format::elf::testing::executable(Some("/lib64/ld-linux-x86-64.so.2")),
    );
    tree.build(&[]).fails(1, &["the init program `/init` is not statically linked"]);
    assert!(!tree.path("out").exists(), "a refused build writes nothing");
}

#[test]
fn dynamic_payload_builds_when_its_loader_is_in_the_initrd() {
    let tree = sealed_tree("");
    tree.write("src/inputs/server", &cvmforge::format::elf::testing::executable(Some("/lib64/ld-linux-x86-64.so.2")));
    tree.write("src/inputs/ld.so", &cvmforge::format::elf::testing::executable(None));
    let recipe = String::from_utf8(tree.read("src/recipe.yaml")).unwrap();
    tree.recipe(&recipe.replace(
        "    - {src: inputs/server, dst: /usr/bin/server}\n",
        "    - {src: inputs/server, dst: /usr/bin/server}\n    - {src: inputs/ld.so, dst: /lib64/ld-linux-x86-64.so.2}\n",
    ));
    tree.build(&[]).ok();
}

#[test]
fn summary_prints_the_verdict_counts_and_modules() {
    let tree = sealed_tree("");
    let recipe = String::from_utf8(tree.read("src/recipe.yaml")).unwrap();
    let with_sh = recipe.replace(
        "  symlinks: [{path: /bin/server, target: /usr/bin/server}]",
        "  symlinks: [{path: /bin/sh, target: /usr/bin/server}]",
    );
    tree.recipe(&with_sh);
    let run = tree.build(&["--allow-unsealed"]).ok();
    assert!(
        run.stdout
            .contains("\nsealing:      violations (1 violation(s), 0 waiver(s) applied, kernel config: ikconfig)\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("\nmodules:      sev_guest\n"), "{}", run.stdout);
    tree.recipe(&format!("{with_sh}sealing:\n  waivers: [{{item: sh, reason: a test}}]\n"));
    let run = tree.build(&["--strict", "--force"]).ok();
    assert!(
        run.stdout.contains(
            "\nsealing:      sealed-with-waivers (0 violation(s), 1 waiver(s) applied, kernel config: ikconfig, strict)\n"
        ),
        "{}",
        run.stdout
    );
    let report: serde_json::Value =
        serde_json::from_str(&tree.run(&["build", "src/recipe.yaml", "-o", "out2", "--json"]).ok().stdout).unwrap();
    assert_eq!(
        report["sealing"],
        serde_json::json!({"verdict": "sealed-with-waivers", "strict": true, "violations": 0, "waivers_applied": 1,
            "kernel_config": "ikconfig", "modules": ["sev_guest"]})
    );
}

/// Issue 11, item 2: a kernel module from `kernel.modules.tree` reaches the initrd and every measurement, so it is in
/// the lock, and a rebuilt module fails `--locked` (naming it) instead of changing the image silently.
#[test]
fn issue11_locked_refuses_a_rebuilt_kernel_module() {
    let tree = sealed_tree("");
    tree.build(&[]).ok();
    let dest = format!("/lib/modules/{RELEASE}/kernel/drivers/virt/coco/sev-guest/sev-guest.ko");
    let lock = String::from_utf8(tree.read("src/recipe.lock")).unwrap();
    assert!(lock.contains(&format!("\"module:{dest}\"")), "{lock}");
    tree.build(&["--locked", "--force"]).ok();

    let vermagic = format!("vermagic={RELEASE} SMP preempt mod_unload modversions ");
    let rebuilt =
        cvmforge::format::elf::testing::kernel_module(&["license=GPL", "depends=", "name=sev_guest", &vermagic, "x=1"]);
    tree.write(&format!("src/kmod{dest}"), &rebuilt);
    let run = tree.build(&["--locked", "--force"]);
    run.fails(1, &[&format!("input `module:{dest}`"), "expected sha256"]);
    assert_eq!(tree.read("src/recipe.lock"), lock.as_bytes(), "--locked must not rewrite the lock");
}

/// A sealed build (strict, the default) verifies: `verify` rebuilds in the strictness that the manifest records, so
/// the rebuilt `sealing.strict` matches (it once rebuilt everything non-strict and reported a difference).
#[test]
fn strict_build_verifies_identical() {
    let tree = sealed_tree("");
    tree.build(&[]).ok();
    let run = tree.run(&["verify", "out/demo-0.1.0.cvm.tar", "--recipe", "src/recipe.yaml"]).ok();
    assert!(run.stdout.ends_with("verified: the rebuild is identical\n"), "{}", run.stdout);
}

/// Issue 11 item 6, issue 17: a setuid or setgid file in the initrd is a sealing violation unless waived; the default
/// (strict) build fails, naming the file and the fix.
#[test]
fn issue11_setuid_file_in_the_initrd_is_a_violation() {
    let tree = sealed_tree("");
    let recipe = String::from_utf8(tree.read("src/recipe.yaml")).unwrap();
    let with_setuid = recipe.replace(
        "    - {src: inputs/server, dst: /usr/bin/server}\n",
        "    - {src: inputs/server, dst: /usr/bin/server, mode: 0o4755}\n",
    );
    assert_ne!(with_setuid, recipe, "test bug: the files line changed");
    tree.recipe(&with_setuid);
    tree.build(&[]).fails(
        1,
        &[
            "`setid:/usr/bin/server`: `/usr/bin/server` is setuid (mode 4755)",
            "fix: drop the setuid/setgid bits from its `mode` in the recipe",
        ],
    );
    tree.recipe(&format!("{with_setuid}sealing:\n  waivers: [{{item: \"setid:/usr/bin/server\", reason: a test}}]\n"));
    tree.build(&[]).ok();
}
