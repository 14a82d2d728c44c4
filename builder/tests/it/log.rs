//! `cvmforge log` (issue 12): the chain init → append → prove → verify-proof → audit → witness, every refusal of a
//! tampered log, crash safety at every write step (fault injection), two appending processes, and an audit over
//! HTTP. Interoperation with Cloudflare's `tlog_tiles` and `signed_note` crates: `log_interop.rs`.

use std::path::Path;
use std::process::{Command, Stdio};

use cvmforge::publish::{dsse, keys};
use ed25519_dalek::SigningKey;

use crate::util::{cvmforge, Run, Tree};

/// A tree with a log key, a release key, a witness key, and `n` envelopes `e<i>.dsse.json` signed by the release key.
fn keys_and_envelopes(n: usize) -> Tree {
    let tree = Tree::new();
    for (name, seed) in [("log", 1u8), ("release", 2), ("w1", 3), ("w2", 4), ("other", 5)] {
        let key = SigningKey::from_bytes(&[seed; 32]);
        tree.write(&format!("{name}.key"), keys::private_pem(&key).unwrap().as_bytes());
        tree.write(&format!("{name}.pub"), keys::public_pem(&key.verifying_key()).unwrap().as_bytes());
    }
    write_envelopes(&tree, 0, n, 2);
    tree
}

/// Envelopes `e<first>..e<first+n>` signed by the key of `seed`.
fn write_envelopes(tree: &Tree, first: usize, n: usize, seed: u8) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    for i in first..first + n {
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"release-{i}","digest":{{"sha256":"{:064x}"}}}}],"predicateType":"https://cvmforge.dev/launch-measurements/v1","predicate":{{}}}}"#,
            i
        );
        let envelope = dsse::sign(statement.as_bytes(), dsse::IN_TOTO_PAYLOAD_TYPE, &key);
        tree.write(&format!("e{i}.dsse.json"), &serde_json::to_vec(&envelope).unwrap());
    }
}

fn envelope_names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i}.dsse.json")).collect()
}

fn init(tree: &Tree) {
    tree.run(&["log", "init", "L", "--origin", "example.org/log", "--key", "log.key", "--signer", "release.pub"]).ok();
}

fn append(tree: &Tree, range: std::ops::Range<usize>) -> Run {
    let names = envelope_names(range);
    let mut args = vec!["log", "append", "L"];
    args.extend(names.iter().map(String::as_str));
    args.extend(["--key", "log.key"]);
    tree.run(&args)
}

fn audit(tree: &Tree, extra: &[&str]) -> Run {
    let mut args = vec!["--json", "log", "audit", "L", "--log-key", "log.pub"];
    args.extend_from_slice(extra);
    tree.run(&args)
}

fn audited_size(run: &Run) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    v["size"].as_u64().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_log_proves_audits_and_is_witnessed() {
    let tree = keys_and_envelopes(300);
    init(&tree);
    let first = append(&tree, 0..200).ok();
    assert!(first.stdout.starts_with("0\te0.dsse.json\n1\te1.dsse.json\n"), "{}", first.stdout);
    let second = append(&tree, 200..300).ok();
    assert!(second.stdout.ends_with("299\te299.dsse.json\n"), "{}", second.stdout);
    // 300 entries: one full tile and a partial one at level 0, a partial tile at level 1, and the entry bundles.
    for path in ["tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1", "tile/entries/000", "tile/entries/001.p/44"] {
        assert!(tree.path("L").join(path).is_file(), "{path}");
    }
    let checkpoint = String::from_utf8(tree.read("L/checkpoint")).unwrap();
    assert!(checkpoint.starts_with("example.org/log\n300\n"), "{checkpoint}");
    assert!(checkpoint.contains("\n\n\u{2014} example.org/log "), "{checkpoint}");

    for index in ["0", "255", "256", "299"] {
        tree.run(&["log", "prove", "L", "--index", index, "--log-key", "log.pub", "-o", "p.tlog-proof"]).ok();
        let proof = String::from_utf8(tree.read("p.tlog-proof")).unwrap();
        assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{proof}");
        assert!(proof.contains(&format!("\nindex {index}\n")), "{proof}");
        let ok = tree.run(&["log", "verify-proof", "p.tlog-proof", "--log-key", "log.pub"]).ok();
        assert!(ok.stdout.starts_with(&format!("verified: entry {index} is in example.org/log at tree size 300")));
    }
    // By entry, and checked against the entry.
    tree.run(&["log", "prove", "L", "--entry", "e7.dsse.json", "--log-key", "log.pub", "-o", "p7"]).ok();
    tree.run(&["log", "verify-proof", "p7", "--log-key", "log.pub", "--entry", "e7.dsse.json"]).ok();
    tree.run(&["log", "verify-proof", "p7", "--log-key", "log.pub", "--entry", "e8.dsse.json"])
        .fails(1, &["the given entry is not the one the proof carries"]);
    tree.run(&["log", "verify-proof", "p7", "--log-key", "w1.pub"])
        .fails(1, &["no valid signature by `example.org/log`"]);
    // A proof with one hash changed proves nothing.
    let text = String::from_utf8(tree.read("p7")).unwrap();
    let hash_line = text.lines().nth(3).unwrap().to_string();
    let flipped =
        if hash_line.starts_with('A') { hash_line.replacen('A', "B", 1) } else { format!("A{}", &hash_line[1..]) };
    tree.write("p7.bad", text.replacen(&hash_line, &flipped, 1).as_bytes());
    tree.run(&["log", "verify-proof", "p7.bad", "--log-key", "log.pub"])
        .fails(1, &["entry 7 is not included in the tree of 300 entries"]);

    // The verifier-key string works as well as the PEM key.
    let vkey = tree.run(&["log", "init", "L2", "--origin", "example.org/log", "--key", "log.key"]).ok().stdout;
    assert_eq!(tree.run(&["log", "verify-proof", "p7", "--log-key", vkey.trim()]).ok().code, 0);

    // Audit, with state: the second audit proves the new checkpoint consistent with the first.
    let report = audit(&tree, &["--state", "A"]).ok();
    let v: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!((v["size"].as_u64(), v["entries_verified"].as_u64()), (Some(300), Some(300)));
    assert_eq!(v["tiles_checked"].as_u64(), Some(5), "{v}");
    write_envelopes(&tree, 300, 20, 2);
    append(&tree, 300..320).ok();
    let again: serde_json::Value = serde_json::from_str(&audit(&tree, &["--state", "A"]).ok().stdout).unwrap();
    assert_eq!((again["size"].as_u64(), again["previous_size"].as_u64()), (Some(320), Some(300)));

    // Two witnesses cosign; the log merges the cosignatures; audit and verify-proof count them.
    let mut vkeys = Vec::new();
    for w in ["w1", "w2"] {
        let run = tree
            .run(&[
                "log",
                "witness",
                "L",
                "--log-key",
                "log.pub",
                "--witness-key",
                &format!("{w}.key"),
                "--name",
                &format!("{w}.example.org"),
                "--state",
                &format!("{w}-state"),
                "--time",
                "1767225600",
            ])
            .ok();
        assert!(run.stderr.contains("trusted on first use"), "{}", run.stderr);
        tree.write(&format!("{w}.vkey"), run.stdout.as_bytes());
        vkeys.push(run.stdout.trim().to_string());
    }
    assert!(vkeys[0].starts_with("w1.example.org+"), "{}", vkeys[0]);
    audit(&tree, &["--witness-key", "w1.vkey", "--quorum", "1"])
        .fails(1, &["0 valid cosignature(s) from the given witness keys, 1 required"]);
    tree.run(&[
        "log",
        "checkpoint",
        "L",
        "--log-key",
        "log.pub",
        "--add-cosignatures",
        "w1-state/checkpoint",
        "--add-cosignatures",
        "w2-state/checkpoint",
        "--witness-key",
        "w1.vkey",
        "--witness-key",
        "w2.vkey",
    ])
    .ok();
    let quorum = audit(&tree, &["--witness-key", "w1.vkey", "--witness-key", &vkeys[1], "--quorum", "2"]).ok();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&quorum.stdout).unwrap()["cosignatures"], 2);
    tree.run(&["log", "prove", "L", "--index", "310", "--log-key", "log.pub", "-o", "p310"]).ok();
    tree.run(&["log", "verify-proof", "p310", "--log-key", "log.pub", "--witness-key", "w1.vkey", "--quorum", "1"])
        .ok();
    // A witness that saw the log grow cosigns again after checking consistency.
    append(&tree, 0..1).ok();
    let run = tree
        .run(&[
            "log",
            "witness",
            "L",
            "--log-key",
            "log.pub",
            "--witness-key",
            "w1.key",
            "--name",
            "w1.example.org",
            "--state",
            "w1-state",
            "--time",
            "1767225700",
        ])
        .ok();
    assert!(run.stderr.contains("321 entries is consistent with the 320 cosigned before"), "{}", run.stderr);
}

#[test]
fn append_refuses_what_the_log_must_not_take() {
    let tree = keys_and_envelopes(2);
    init(&tree);
    write_envelopes(&tree, 10, 1, 5);
    tree.run(&["log", "append", "L", "e10.dsse.json", "--key", "log.key"])
        .fails(1, &["entry 0: not signed by any of the log's 1 signer(s)", "hint: add the signer's public key"]);
    tree.write("junk.json", b"{\"payload\": 1}");
    tree.run(&["log", "append", "L", "junk.json", "--key", "log.key"]).fails(1, &["entry 0: not a DSSE envelope"]);
    tree.run(&["log", "append", "L", "e0.dsse.json", "--key", "w1.key"])
        .fails(1, &["no valid signature by `example.org/log`"]);
    // Nothing was appended by the refused calls; after add-signer the other key's envelope is accepted.
    tree.run(&["log", "add-signer", "L", "other.pub"]).ok();
    let run = tree.run(&["log", "append", "L", "e10.dsse.json", "--key", "log.key"]).ok();
    assert_eq!(run.stdout, "0\te10.dsse.json\n");
    // init never takes over a directory that holds something.
    tree.run(&["log", "init", "L", "--origin", "example.org/log", "--key", "log.key"])
        .fails(1, &["exists and is not empty"]);
    tree.run(&["log", "init", "N", "--origin", "bad origin", "--key", "log.key"])
        .fails(1, &["origin: key name `bad origin`"]);
}

#[test]
fn audit_refuses_every_kind_of_tampering_naming_it() {
    let tree = keys_and_envelopes(270);
    init(&tree);
    append(&tree, 0..270).ok();
    audit(&tree, &["--state", "S"]).ok();
    let pristine = tree.path("pristine");
    copy_dir(&tree.path("L"), &pristine);
    let reset = || {
        std::fs::remove_dir_all(tree.path("L")).unwrap();
        copy_dir(&pristine, &tree.path("L"));
    };

    // An entry changed in place (the signature no longer verifies).
    let mut bundle = tree.read("L/tile/entries/000");
    let at = bundle.len() / 2;
    bundle[at] ^= 0x01;
    tree.write("L/tile/entries/000", &bundle);
    audit(&tree, &[]).fails(1, &["the log at `L` is refused", "entry "]);
    reset();
    // A hash tile rewritten.
    let mut tile = tree.read("L/tile/0/000");
    tile[0] ^= 0x80;
    tree.write("L/tile/0/000", &tile);
    audit(&tree, &[]).fails(1, &["tile/0/000` does not hold the hashes of the log's entries"]);
    reset();
    // A missing tile, an extra tile, a malformed path, an older partial tile that disagrees.
    std::fs::remove_file(tree.path("L/tile/0/001.p/14")).unwrap();
    audit(&tree, &[]).fails(1, &["tile/0/001.p/14` is missing"]);
    reset();
    tree.write("L/tile/0/005", &[0u8; 8192]);
    audit(&tree, &[]).fails(1, &["tile/0/005`: extra tile: the tree of 270 entries has no such tile"]);
    reset();
    tree.write("L/tile/0/1", &[0u8; 32]);
    audit(&tree, &[]).fails(1, &["tile/0/1`: extra tile: not a tile path"]);
    reset();
    tree.write("L/tile/0/001.p/3", &[7u8; 96]);
    audit(&tree, &[])
        .fails(1, &["tile/0/001.p/3`: extra tile: an older partial tile that disagrees with `tile/0/001.p/14`"]);
    reset();
    // A bad signature on the checkpoint.
    let text = String::from_utf8(tree.read("L/checkpoint")).unwrap();
    tree.write("L/checkpoint", text.replace("\n270\n", "\n271\n").as_bytes());
    audit(&tree, &[]).fails(1, &["no valid signature by `example.org/log`"]);
    reset();
    tree.run(&["log", "audit", "L", "--log-key", "w1.pub"]).fails(1, &["no valid signature"]);

    // A rollback: the log shows an older checkpoint than the audit state holds.
    let old = tree.path("old");
    copy_dir(&tree.path("L"), &old);
    write_envelopes(&tree, 270, 5, 2);
    append(&tree, 270..275).ok();
    audit(&tree, &["--state", "S"]).ok();
    std::fs::remove_dir_all(tree.path("L")).unwrap();
    copy_dir(&old, &tree.path("L"));
    audit(&tree, &["--state", "S"])
        .fails(1, &["rollback: the log has 270 entries, but a checkpoint of 275 entries was seen before"]);

    // A split view: the same key signs a different history of the same length.
    std::fs::remove_dir_all(tree.path("L")).unwrap();
    init(&tree);
    write_envelopes(&tree, 1000, 275, 2);
    append(&tree, 1000..1275).ok();
    audit(&tree, &["--state", "S"])
        .fails(1, &["SPLIT VIEW: the checkpoint of 275 entries", "hint: keep both checkpoints"]);
    let run = tree.run(&[
        "log",
        "witness",
        "L",
        "--log-key",
        "log.pub",
        "--witness-key",
        "w1.key",
        "--name",
        "w1",
        "--state",
        "S",
        "--time",
        "1",
    ]);
    run.fails(1, &["SPLIT VIEW"]);
    // The witness cosigned nothing: its state still holds the checkpoint it had.
    assert!(String::from_utf8(tree.read("S/checkpoint")).unwrap().starts_with("example.org/log\n275\n"));
    assert!(!String::from_utf8(tree.read("S/checkpoint")).unwrap().contains("\u{2014} w1 "));
}

/// Runs `log append` and stops it at write step `step` (`CVMFORGE_TEST_CRASH_AT`); `None` when it finished first.
fn append_crashing_at(dir: &Path, step: u64, names: &[String]) -> Option<Run> {
    let mut args = vec!["log".to_string(), "append".into(), "L".into()];
    args.extend(names.iter().cloned());
    args.extend(["--key".into(), "log.key".into()]);
    let out = cvmforge().current_dir(dir).args(&args).env("CVMFORGE_TEST_CRASH_AT", step.to_string()).output().unwrap();
    if out.status.success() {
        return None;
    }
    assert_eq!(out.status.code(), None, "the append should die of SIGABRT: {}", String::from_utf8_lossy(&out.stderr));
    Some(Run {
        code: -1,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    })
}

/// The name of the step a crashed append stopped at.
fn step_name(run: &Run) -> String {
    let line = run.stderr.lines().find(|l| l.contains("stopping at step")).unwrap_or_default();
    line.split_once(" (").map(|(_, rest)| rest.trim_end_matches(')').to_string()).unwrap_or_default()
}

#[test]
fn a_crash_at_any_write_step_leaves_a_log_that_audits_and_a_rerun_completes() {
    let tree = keys_and_envelopes(520);
    init(&tree);
    // 250 entries, then 20 more: the append completes tile 0, starts tile 1, and writes a level-1 tile.
    append(&tree, 0..250).ok();
    let base = tree.path("base");
    copy_dir(&tree.path("L"), &base.join("L"));
    for name in ["log.key", "log.pub", "release.pub"] {
        std::fs::copy(tree.path(name), base.join(name)).unwrap();
    }
    let names: Vec<String> = envelope_names(250..270).iter().map(|n| format!("../{n}")).collect();
    let mut crashed = 0u64;
    for step in 1u64.. {
        let work = tree.path(&format!("crash-{step}"));
        copy_dir(&base, &work);
        let Some(run) = append_crashing_at(&work, step, &names) else { break };
        assert!(run.stderr.contains(&format!("stopping at step {step} (")), "{}", run.stderr);
        crashed += 1;
        // The log still audits: the published checkpoint is the old one or the new one, intact.
        let report = crate::util::run_in(&work, &["--json", "log", "audit", "L", "--log-key", "log.pub"]).ok();
        let size = audited_size(&report);
        assert!(size == 250 || size == 270, "step {step}: {size}");
        // Every entry the old checkpoint covered is still there and proves.
        crate::util::run_in(&work, &["log", "prove", "L", "--index", "249", "--log-key", "log.pub", "-o", "p"]).ok();
        crate::util::run_in(
            &work,
            &["log", "verify-proof", "p", "--log-key", "log.pub", "--entry", "../e249.dsse.json"],
        )
        .ok();
        if size == 250 {
            // The rerun completes.
            let mut args = vec!["log", "append", "L"];
            args.extend(names.iter().map(String::as_str));
            args.extend(["--key", "log.key"]);
            crate::util::run_in(&work, &args).ok();
        }
        let after = crate::util::run_in(&work, &["--json", "log", "audit", "L", "--log-key", "log.pub"]).ok();
        assert_eq!(audited_size(&after), 270, "step {step}");
        // Killed after the checkpoint was published but before the marker was removed, the append is complete;
        // the next append clears the marker.
        assert_eq!(
            work.join("L/.pending").exists(),
            size == 270 && step_name(&run) == "remove .pending",
            "step {step}"
        );
        // The final log is the one an uninterrupted append writes, tile for tile.
        for tile in ["tile/0/000", "tile/0/001.p/14", "tile/1/000.p/1", "tile/entries/001.p/14", "checkpoint"] {
            assert_eq!(
                std::fs::read(work.join("L").join(tile)).ok(),
                std::fs::read(tree.path(&format!("crash-1/L/{tile}"))).ok(),
                "step {step}: {tile}"
            );
        }
        if step > 1 {
            std::fs::remove_dir_all(&work).ok();
        }
    }
    // Every write step of this append (temp file, rename, directory sync, checkpoint, marker) was a kill point.
    assert!(crashed >= 12, "only {crashed} kill points");
    eprintln!("fault injection: {crashed} kill points, all recovered");
}

#[test]
fn two_appending_processes_do_not_corrupt_the_log() {
    let tree = keys_and_envelopes(80);
    init(&tree);
    let spawn = |range: std::ops::Range<usize>| {
        let dir = tree.path("");
        std::thread::spawn(move || {
            for chunk in range.collect::<Vec<_>>().chunks(4) {
                let mut args = vec!["log".to_string(), "append".into(), "L".into()];
                args.extend(chunk.iter().map(|i| format!("e{i}.dsse.json")));
                args.extend(["--key".into(), "log.key".into()]);
                let out = cvmforge().current_dir(&dir).args(&args).stderr(Stdio::piped()).output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        })
    };
    let (a, b) = (spawn(0..40), spawn(40..80));
    a.join().unwrap();
    b.join().unwrap();
    let report = audit(&tree, &[]).ok();
    assert_eq!(audited_size(&report), 80);
    // Every envelope is in the log exactly once.
    for i in 0..80 {
        tree.run(&["log", "prove", "L", "--entry", &format!("e{i}.dsse.json"), "--log-key", "log.pub", "-o", "p"]).ok();
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_log_served_over_http_audits_and_is_witnessed() {
    assert!(crate::util::have("python3"), "python3 serves the log in this test (Debian: python3)");
    let tree = keys_and_envelopes(300);
    init(&tree);
    append(&tree, 0..300).ok();
    let port = free_port();
    let mut server = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
        .arg(tree.path("L"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let result = std::panic::catch_unwind(|| {
        assert!(ready, "http.server did not start");
        let run = tree.run(&["--json", "log", "audit", &url, "--log-key", "log.pub", "--state", "H"]).ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(
            (v["size"].as_u64(), v["entries_verified"].as_u64(), v["listed"].as_bool()),
            (Some(300), Some(300), Some(false))
        );
        tree.run(&["log", "prove", &url, "--index", "123", "--log-key", "log.pub", "-o", "p"]).ok();
        tree.run(&["log", "verify-proof", "p", "--log-key", "log.pub", "--entry", "e123.dsse.json"]).ok();
        tree.run(&[
            "log",
            "witness",
            &url,
            "--log-key",
            "log.pub",
            "--witness-key",
            "w1.key",
            "--name",
            "w1",
            "--state",
            "W",
            "--time",
            "1767225600",
        ])
        .ok();
        // A tile missing on the server is named by its URL.
        std::fs::remove_file(tree.path("L/tile/0/000")).unwrap();
        tree.run(&["log", "audit", &url, "--log-key", "log.pub"]).fails(1, &[&format!("{url}tile/0/000` is missing")]);
    });
    server.kill().ok();
    server.wait().ok();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    // Nothing listens any more: the error names the URL.
    tree.run(&["log", "audit", &url, "--log-key", "log.pub"]).fails(1, &[&format!("{url}checkpoint")]);
}
