//! The kernel command line (`/proc/cmdline`): `cvm.net=ADDR/PREFIX,gw=GATEWAY`.
//!
//! The command line is part of the measured launch (SEV-SNP kernel hashes,
//! TDX RTMR), so the network address is fixed per image. Parsing is strict:
//! anything but exactly `A.B.C.D/N,gw=E.F.G.H` with the gateway inside the
//! subnet is an error. Without `cvm.net=` only loopback is brought up.

use std::net::Ipv4Addr;

/// The cmdline parameter this init reads.
pub(crate) const NET_PARAM: &str = "cvm.net=";

/// A static IPv4 configuration for the first NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetConfig {
    /// The interface address.
    pub(crate) addr: Ipv4Addr,
    /// Prefix length, 1..=30.
    pub(crate) prefix: u8,
    /// Default gateway, inside `addr/prefix`.
    pub(crate) gateway: Ipv4Addr,
}

/// Why `cvm.net=` was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CmdlineError {
    /// `cvm.net=` appears more than once.
    #[error("`cvm.net=` is given more than once on the kernel command line")]
    Duplicate,
    /// The value is not `CIDR,gw=GATEWAY`.
    #[error("`cvm.net={value}`: expected `A.B.C.D/N,gw=E.F.G.H`")]
    Shape { value: String },
    /// The `gw=` part is absent.
    #[error("`cvm.net={value}`: missing `,gw=E.F.G.H`")]
    MissingGateway { value: String },
    /// The address is not dotted-quad IPv4.
    #[error("`{text}` is not an IPv4 address (expected A.B.C.D)")]
    BadAddress { text: String },
    /// The prefix is not a decimal in 1..=30.
    #[error("prefix `/{text}` is invalid: expected a decimal number from 1 to 30")]
    BadPrefix { text: String },
    /// The address cannot be a host address (network, broadcast, loopback, ...).
    #[error("`{addr}/{prefix}` is not a usable host address")]
    NotHost { addr: Ipv4Addr, prefix: u8 },
    /// A `cvm.volume=` value is not `NAME:DATA_BLOCKS:HASH_BLOCKS:ROOT_HASH:SALT`.
    #[error("`cvm.volume={value}`: {reason}")]
    Volume { value: String, reason: &'static str },
    /// Two `cvm.volume=` parameters name the same volume.
    #[error("`cvm.volume={name}:...` is given more than once")]
    DuplicateVolume { name: String },
    /// The gateway is outside the subnet, or is the address itself.
    #[error("gateway `{gateway}` is not another host in `{addr}/{prefix}`")]
    GatewayOutsideSubnet { gateway: Ipv4Addr, addr: Ipv4Addr, prefix: u8 },
}

/// The cmdline parameter of a data volume.
pub(crate) const VOLUME_PARAM: &str = "cvm.volume=";

/// A data volume's dm-verity parameters, as the builder put them on the measured command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeParams {
    /// The volume's name.
    pub(crate) name: String,
    /// 4 KiB blocks of data; the hash tree starts at this block.
    pub(crate) data_blocks: u64,
    /// 4 KiB blocks of hash tree.
    pub(crate) hash_blocks: u64,
    /// The SHA-256 root hash, 64 lowercase hex digits.
    pub(crate) root_hash: String,
    /// The salt, lowercase hex (at most 256 bytes), possibly empty.
    pub(crate) salt: String,
}

/// Every `cvm.volume=` of a kernel command line.
pub(crate) fn parse_volumes(cmdline: &str) -> Result<Vec<VolumeParams>, CmdlineError> {
    let mut out: Vec<VolumeParams> = Vec::new();
    for value in cmdline.split_ascii_whitespace().filter_map(|w| w.strip_prefix(VOLUME_PARAM)) {
        let v = parse_volume(value)?;
        if out.iter().any(|o| o.name == v.name) {
            return Err(CmdlineError::DuplicateVolume { name: v.name });
        }
        out.push(v);
    }
    Ok(out)
}

fn parse_volume(value: &str) -> Result<VolumeParams, CmdlineError> {
    let bad = |reason| CmdlineError::Volume { value: value.into(), reason };
    let parts: Vec<&str> = value.split(':').collect();
    let [name, data, hash, root, salt] = parts[..] else {
        return Err(bad("expected NAME:DATA_BLOCKS:HASH_BLOCKS:ROOT_HASH:SALT"));
    };
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(bad("the name must be 1 to 32 characters of [a-z0-9_-]"));
    }
    let blocks = |text: &str| text.parse::<u64>().ok().filter(|&n| n > 0 && n < (1 << 40));
    let (Some(data_blocks), Some(hash_blocks)) = (blocks(data), blocks(hash)) else {
        return Err(bad("block counts must be decimal numbers from 1 to 2^40"));
    };
    let hex = |text: &str| text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if root.len() != 64 || !hex(root) {
        return Err(bad("the root hash must be 64 lowercase hex digits (SHA-256)"));
    }
    if salt.len() % 2 != 0 || salt.len() > 512 || !hex(salt) {
        return Err(bad("the salt must be lowercase hex of at most 256 bytes"));
    }
    Ok(VolumeParams { name: name.into(), data_blocks, hash_blocks, root_hash: root.into(), salt: salt.into() })
}

/// Finds and parses `cvm.net=` in a kernel command line; `None` if absent.
pub(crate) fn parse_cmdline(cmdline: &str) -> Result<Option<NetConfig>, CmdlineError> {
    let mut values = cmdline.split_ascii_whitespace().filter_map(|w| w.strip_prefix(NET_PARAM));
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CmdlineError::Duplicate);
    }
    parse_net(value).map(Some)
}

/// Parses `A.B.C.D/N,gw=E.F.G.H`.
pub(crate) fn parse_net(value: &str) -> Result<NetConfig, CmdlineError> {
    let mut parts = value.split(',');
    let (Some(cidr), gw, None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CmdlineError::Shape { value: value.into() });
    };
    let gw = gw.ok_or_else(|| CmdlineError::MissingGateway { value: value.into() })?;
    let gw = gw.strip_prefix("gw=").ok_or_else(|| CmdlineError::Shape { value: value.into() })?;
    let (addr, prefix) = cidr.split_once('/').ok_or_else(|| CmdlineError::Shape { value: value.into() })?;
    let addr = parse_addr(addr)?;
    let prefix = parse_prefix(prefix)?;
    let gateway = parse_addr(gw)?;
    check_host(addr, prefix)?;
    if gateway == addr || !same_subnet(addr, gateway, prefix) || check_host(gateway, prefix).is_err() {
        return Err(CmdlineError::GatewayOutsideSubnet { gateway, addr, prefix });
    }
    Ok(NetConfig { addr, prefix, gateway })
}

fn parse_addr(text: &str) -> Result<Ipv4Addr, CmdlineError> {
    // std's parser is strict: four decimal octets, no leading zeros.
    text.parse().map_err(|_| CmdlineError::BadAddress { text: text.into() })
}

fn parse_prefix(text: &str) -> Result<u8, CmdlineError> {
    let bad = || CmdlineError::BadPrefix { text: text.into() };
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) || text.starts_with('0') {
        return Err(bad());
    }
    // /31 and /32 leave no room for a gateway on-link with a broadcast address.
    text.parse::<u8>().ok().filter(|p| (1..=30).contains(p)).ok_or_else(bad)
}

/// The netmask of a prefix in 1..=32.
fn mask(prefix: u8) -> u32 {
    u32::MAX << (32 - u32::from(prefix))
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    u32::from(a) & mask(prefix) == u32::from(b) & mask(prefix)
}

fn check_host(addr: Ipv4Addr, prefix: u8) -> Result<(), CmdlineError> {
    let host = u32::from(addr) & !mask(prefix);
    let special = addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() || addr.is_broadcast();
    if special || host == 0 || host == !mask(prefix) {
        return Err(CmdlineError::NotHost { addr, prefix });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "6f1c0e5b1a1f0c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f809";

    #[test]
    fn parses_volumes() {
        let line = format!("console=ttyS0 cvm.volume=models:12:1:{ROOT}:abcd cvm.volume=b:2:1:{ROOT}: quiet");
        let v = parse_volumes(&line).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].name.as_str(), v[0].data_blocks, v[0].hash_blocks, v[0].salt.as_str()),
            ("models", 12, 1, "abcd")
        );
        assert_eq!(v[1].salt, "");
        assert_eq!(parse_volumes("console=ttyS0").unwrap(), vec![]);
    }

    proptest::proptest! {
        /// The parameters of any command line parse or are refused, never panic; what the builder writes parses back.
        #[test]
        fn volume_params_never_panic_and_round_trip(
            noise in "[ -~]{0,200}",
            name in "[a-z0-9_-]{1,32}",
            data in 1u64..(1 << 40),
            hash in 1u64..(1 << 40),
            salt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..=256),
        ) {
            let _ = parse_volumes(&noise);
            let _ = parse_volumes(&format!("cvm.volume={noise}"));
            let salt: String = salt.iter().map(|b| format!("{b:02x}")).collect();
            let line = format!("quiet cvm.volume={name}:{data}:{hash}:{ROOT}:{salt} panic=-1");
            let v = parse_volumes(&line).unwrap();
            proptest::prop_assert_eq!(v, vec![VolumeParams {
                name, data_blocks: data, hash_blocks: hash, root_hash: ROOT.into(), salt
            }]);
        }
    }

    #[test]
    fn rejects_bad_volumes() {
        for (value, needle) in [
            (format!("m:12:1:{ROOT}"), "expected NAME"),
            (format!("M:12:1:{ROOT}:ab"), "the name"),
            (format!("m:0:1:{ROOT}:ab"), "block counts"),
            (format!("m:12:x:{ROOT}:ab"), "block counts"),
            ("m:12:1:abcd:ab".to_string(), "root hash"),
            (format!("m:12:1:{}:ab", ROOT.to_uppercase()), "root hash"),
            (format!("m:12:1:{ROOT}:abc"), "salt"),
        ] {
            let err = parse_volumes(&format!("cvm.volume={value}")).unwrap_err().to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
        let twice = format!("cvm.volume=m:1:1:{ROOT}: cvm.volume=m:2:1:{ROOT}:");
        assert_eq!(parse_volumes(&twice), Err(CmdlineError::DuplicateVolume { name: "m".into() }));
    }

    #[test]
    fn parses_net_from_cmdline() {
        let c = parse_cmdline("console=ttyS0 panic=-1 cvm.net=10.0.2.15/24,gw=10.0.2.2 quiet").unwrap();
        assert_eq!(
            c,
            Some(NetConfig { addr: Ipv4Addr::new(10, 0, 2, 15), prefix: 24, gateway: Ipv4Addr::new(10, 0, 2, 2) })
        );
        assert_eq!(parse_cmdline("console=ttyS0 xcvm.net=1 cvm.netx=2\n").unwrap(), None);
        assert_eq!(parse_cmdline("").unwrap(), None);
    }

    #[test]
    fn rejects_duplicate_param() {
        let c = "cvm.net=10.0.2.15/24,gw=10.0.2.2 cvm.net=10.0.2.16/24,gw=10.0.2.2";
        assert_eq!(parse_cmdline(c), Err(CmdlineError::Duplicate));
    }

    #[test]
    fn rejects_missing_gw() {
        assert!(matches!(parse_net("10.0.2.15/24"), Err(CmdlineError::MissingGateway { .. })));
        assert!(matches!(parse_net("10.0.2.15/24,10.0.2.2"), Err(CmdlineError::Shape { .. })));
        assert!(matches!(parse_net("10.0.2.15/24,gw="), Err(CmdlineError::BadAddress { .. })));
    }

    #[test]
    fn rejects_bad_cidr() {
        for v in ["10.0.2.15,gw=10.0.2.2", "10.0.2.15/24/1,gw=10.0.2.2"] {
            assert!(parse_net(v).is_err(), "{v}");
        }
        for v in [
            "10.0.2/24,gw=10.0.2.2",
            "10.0.2.256/24,gw=10.0.2.2",
            "010.0.2.15/24,gw=10.0.2.2",
            " 10.0.2.15/24,gw=10.0.2.2",
        ] {
            assert!(matches!(parse_net(v), Err(CmdlineError::BadAddress { .. })), "{v}");
        }
        for p in ["", "0", "024", "31", "32", "33", "+8", "x"] {
            let v = format!("10.0.2.15/{p},gw=10.0.2.2");
            assert!(matches!(parse_net(&v), Err(CmdlineError::BadPrefix { .. })), "{v}");
        }
    }

    #[test]
    fn rejects_non_host_addresses() {
        for v in [
            "10.0.2.0/24,gw=10.0.2.2",
            "10.0.2.255/24,gw=10.0.2.2",
            "127.0.0.5/8,gw=127.0.0.1",
            "224.0.0.5/24,gw=224.0.0.1",
        ] {
            assert!(matches!(parse_net(v), Err(CmdlineError::NotHost { .. })), "{v}");
        }
    }

    #[test]
    fn rejects_gateway_outside_subnet() {
        for v in [
            "10.0.2.15/24,gw=10.0.3.2",
            "10.0.2.15/24,gw=10.0.2.15",
            "10.0.2.15/24,gw=10.0.2.255",
            "10.0.2.15/24,gw=10.0.2.0",
        ] {
            assert!(matches!(parse_net(v), Err(CmdlineError::GatewayOutsideSubnet { .. })), "{v}");
        }
        assert!(parse_net("192.168.1.10/16,gw=192.168.200.1").is_ok());
        assert!(matches!(parse_net("192.168.1.10/24,gw=10.0.2.2,x"), Err(CmdlineError::Shape { .. })));
    }
}
