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
    /// The gateway is outside the subnet, or is the address itself.
    #[error("gateway `{gateway}` is not another host in `{addr}/{prefix}`")]
    GatewayOutsideSubnet { gateway: Ipv4Addr, addr: Ipv4Addr, prefix: u8 },
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
