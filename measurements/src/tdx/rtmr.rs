//! RTMR event lists for direct kernel boot under TDVF, their replay, and a TCG-style event log.
//!
//! Spec: `docs/specs/tdx-measurement.md`, "RTMRs". Replay rule: `RTMR = SHA-384(RTMR ‖ event digest)` from 48 zero
//! bytes. TCG PCRs map to TDX measurement registers as PCR1,7 → RTMR0, PCR2-6 → RTMR1, PCR8-15 → RTMR2; in the
//! CC event log (CCEL) each event carries `MrIndex = RTMR index + 1` (UEFI 2.10, 38.4.1).

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::io::Read;

use sha2::{Digest, Sha384 as Sha384Hasher};

use super::load_options::{load_options, CmdlineLayout};
use super::Sha384;

/// `EV_SEPARATOR` (TCG PC Client PFP, Table 9).
pub const EV_SEPARATOR: u32 = 0x0000_0004;
/// `EV_EVENT_TAG`.
pub const EV_EVENT_TAG: u32 = 0x0000_0006;
/// `EV_EFI_BOOT_SERVICES_APPLICATION`.
pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
/// `EV_EFI_ACTION`.
pub const EV_EFI_ACTION: u32 = 0x8000_0007;

/// The EV_EFI_ACTION string edk2 measures before starting the boot option (PCR4).
pub const CALLING_EFI_APPLICATION: &str = "Calling EFI Application from Boot Option";
/// The EV_EFI_ACTION strings measured at ExitBootServices (PCR5).
pub const EXIT_BOOT_SERVICES: [&str; 2] = ["Exit Boot Services Invocation", "Exit Boot Services Returned with Success"];
/// The separator event's data (4 zero bytes).
pub const SEPARATOR: [u8; 4] = [0; 4];
/// The Linux EFI stub's tag for the LoadOptions event.
pub const LOAD_OPTIONS_TAG: u32 = 0x8F3B_22ED;
/// The Linux EFI stub's tag for the initrd event.
pub const INITRD_TAG: u32 = 0x8F3B_22EC;

/// One measured event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The RTMR it extends (0-3).
    pub rtmr: u8,
    /// The TCG PCR the firmware or the stub names (CCEL maps it to `rtmr`).
    pub pcr: u8,
    /// The TCG event type.
    pub event_type: u32,
    /// What was measured.
    pub description: String,
    /// The SHA-384 digest extended into the register.
    pub digest: Sha384,
}

/// A register's events with the register value after each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The register index.
    pub rtmr: u8,
    /// Each event and the running value after extending it.
    pub steps: Vec<(Event, Sha384)>,
    /// The final value.
    pub value: Sha384,
}

/// Extends `value` with `digest`: SHA-384(value ‖ digest).
pub fn extend(value: Sha384, digest: Sha384) -> Sha384 {
    let mut h = Sha384Hasher::new();
    h.update(value.0);
    h.update(digest.0);
    Sha384(h.finalize().into())
}

/// Replays the events of register `rtmr` from zero.
pub fn replay(rtmr: u8, events: &[Event]) -> Replay {
    let mut value = Sha384::ZERO;
    let mut steps = Vec::new();
    for e in events.iter().filter(|e| e.rtmr == rtmr) {
        value = extend(value, e.digest);
        steps.push((e.clone(), value));
    }
    Replay { rtmr, steps, value }
}

/// SHA-384 of a stream (for large initrds), with its length.
pub fn sha384_reader(mut r: impl Read) -> std::io::Result<(Sha384, u64)> {
    let mut h = Sha384Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
        len += n as u64;
    }
    Ok((Sha384(h.finalize().into()), len))
}

/// RTMR1 for direct kernel boot: the kernel image's Authenticode digest (of the bytes the firmware received), the
/// boot-option action, the separator, and the two ExitBootServices actions (dstack-mr's list; TDVF measures the
/// separator only into RTMR0 and RTMR1).
pub fn rtmr1_events(kernel_authenticode: Sha384) -> Vec<Event> {
    let action = |pcr, s: &str| Event {
        rtmr: 1,
        pcr,
        event_type: EV_EFI_ACTION,
        description: format!("EV_EFI_ACTION \"{s}\""),
        digest: Sha384::of(s.as_bytes()),
    };
    vec![
        Event {
            rtmr: 1,
            pcr: 4,
            event_type: EV_EFI_BOOT_SERVICES_APPLICATION,
            description: "kernel PE/COFF Authenticode SHA-384".to_string(),
            digest: kernel_authenticode,
        },
        action(4, CALLING_EFI_APPLICATION),
        Event {
            rtmr: 1,
            pcr: 4,
            event_type: EV_SEPARATOR,
            description: "EV_SEPARATOR (4 zero bytes)".to_string(),
            digest: Sha384::of(&SEPARATOR),
        },
        action(5, EXIT_BOOT_SERVICES[0]),
        action(5, EXIT_BOOT_SERVICES[1]),
    ]
}

/// RTMR2 as the Linux EFI stub (≥ 6.9, or a backport of its CC-measurement support) extends it: the LoadOptions,
/// then the initrd if one was loaded (the stub measures the initrd only when it loads one, so there is no initrd
/// event without an initrd). QEMU always passes a command line (at least its NUL), so OVMF always sets LoadOptions.
pub fn rtmr2_events(cmdline: &[u8], initrd_digest: Option<Sha384>, layout: CmdlineLayout) -> Vec<Event> {
    let options = load_options(cmdline, initrd_digest.is_some(), layout);
    let mut events = vec![Event {
        rtmr: 2,
        pcr: 9,
        event_type: EV_EVENT_TAG,
        description: format!(
            "EV_EVENT_TAG {LOAD_OPTIONS_TAG:#x} \"LOADED_IMAGE::LoadOptions\" ({} bytes)",
            options.len()
        ),
        digest: Sha384::of(&options),
    }];
    if let Some(digest) = initrd_digest {
        events.push(Event {
            rtmr: 2,
            pcr: 9,
            event_type: EV_EVENT_TAG,
            description: format!("EV_EVENT_TAG {INITRD_TAG:#x} \"Linux initrd\""),
            digest,
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_extends_from_zero() {
        let e = rtmr1_events(Sha384::of(b"kernel"));
        let r = replay(1, &e);
        let mut v = [0u8; 48].to_vec();
        for ev in &e {
            let mut buf = v.clone();
            buf.extend_from_slice(&ev.digest.0);
            v = Sha384Hasher::digest(&buf).to_vec();
        }
        assert_eq!(r.value.0.to_vec(), v);
        assert_eq!(r.steps.len(), 5);
        assert_eq!(replay(3, &e).value, Sha384::ZERO);
    }

    #[test]
    fn fixed_event_digests_are_of_the_ascii_strings() {
        let e = rtmr1_events(Sha384::ZERO);
        assert_eq!(e[1].digest, Sha384::of(b"Calling EFI Application from Boot Option"));
        assert_eq!(
            e[2].digest.to_string(),
            "394341b7182cd227c5c6b07ef8000cdfd86136c4292b8e576573ad7ed9ae41019f5818b4b971c9effc60e1ad9f1289f0"
        );
    }

    #[test]
    fn no_initrd_event_without_initrd() {
        let e = rtmr2_events(b"console=ttyS0", None, CmdlineLayout::Prefix);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].digest.to_string(),
            "0c55ff8ce3ea9389db345e81fd8f0ef3cd0737c952cfc38197b2c6ac6af0fba4b56f7e027577357654dd00e43a82be63"
        );
        let e = rtmr2_events(b"console=ttyS0", Some(Sha384::of(b"x")), CmdlineLayout::Prefix);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0].digest.to_string(),
            "f9f8fb4b0e1dce36006d4f4a67381bc02cb5fb2fe7143f3091569254993fb8edfa15f5b55ebdbf24cb189af4c6dbb8ff"
        );
    }

    #[test]
    fn streams_initrd_digest() {
        let data = vec![7u8; 3 << 20];
        let (d, n) = sha384_reader(&data[..]).unwrap();
        assert_eq!((d, n), (Sha384::of(&data), 3 << 20));
    }
}
