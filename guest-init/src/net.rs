//! Network bring-up over rtnetlink (RFC 3549; `include/uapi/linux/rtnetlink.h`).
//!
//! Messages are built by hand as bytes (no unsafe, no ioctls): set a link up
//! (`RTM_NEWLINK`), add an IPv4 address (`RTM_NEWADDR`) and a default route
//! (`RTM_NEWROUTE`). Each request asks for an ACK and the kernel's
//! `NLMSG_ERROR` answer is checked. The byte layout is the one iproute2 sends
//! for `ip link set up`, `ip addr add` and `ip route add default via .. proto
//! boot` (cross-checked in the tests with bytes captured by `strace -e write=`).
//! Bringing `lo` up makes the kernel assign 127.0.0.1/8 itself.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

use crate::cmdline::NetConfig;

// include/uapi/linux/netlink.h
const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
// include/uapi/linux/rtnetlink.h
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
// include/uapi/linux/if_addr.h
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
// include/linux/socket.h, include/uapi/linux/if.h
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;

/// How long to wait for the NIC to appear after its driver is loaded.
const NIC_WAIT: Duration = Duration::from_secs(5);

/// Why the network could not be brought up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetError {
    /// A netlink socket call failed.
    #[error("netlink {call} failed: {errno}")]
    Socket { call: &'static str, errno: Errno },
    /// The kernel answered a request with an error.
    #[error("kernel refused {request}: {errno}")]
    Refused { request: &'static str, errno: Errno },
    /// The answer was not a well-formed ACK for our request.
    #[error("malformed netlink answer to {request}: {what}")]
    BadAnswer { request: &'static str, what: &'static str },
    /// No NIC other than `lo` appeared in time.
    #[error("no network interface besides lo in /sys/class/net after {seconds} s")]
    NoNic { seconds: u64 },
    /// Reading `/sys/class/net/...` failed.
    #[error("cannot read `{path}`")]
    Sysfs {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Appends one rtattr (`struct rtattr`: u16 len, u16 type, data, 4-byte aligned).
fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    // Attributes here are 4 or 8 bytes; u16 cannot overflow.
    buf.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// Wraps a payload in `struct nlmsghdr` (len, type, flags, seq, pid 0).
fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(NLMSG_HDR_LEN + payload.len()).unwrap_or(u32::MAX);
    let mut buf = Vec::with_capacity(NLMSG_HDR_LEN + payload.len());
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf
}

/// `RTM_NEWLINK` with `struct ifinfomsg` setting `IFF_UP` (like `ip link set DEV up`).
pub(crate) fn link_up_message(seq: u32, ifindex: u32) -> Vec<u8> {
    let mut p = vec![AF_UNSPEC, 0];
    p.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    p.extend_from_slice(&ifindex.to_ne_bytes()); // ifi_index
    p.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    p.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, &p)
}

/// `RTM_NEWADDR` with `struct ifaddrmsg` + IFA_LOCAL + IFA_ADDRESS (like `ip addr add`).
pub(crate) fn add_address_message(seq: u32, ifindex: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut p = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
    p.extend_from_slice(&ifindex.to_ne_bytes());
    push_attr(&mut p, IFA_LOCAL, &addr.octets());
    push_attr(&mut p, IFA_ADDRESS, &addr.octets());
    message(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, seq, &p)
}

/// `RTM_NEWROUTE` with `struct rtmsg` for 0.0.0.0/0 via `gateway` (like `ip route add default`).
pub(crate) fn default_route_message(seq: u32, ifindex: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST];
    p.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
    push_attr(&mut p, RTA_GATEWAY, &gateway.octets());
    push_attr(&mut p, RTA_OIF, &ifindex.to_ne_bytes());
    message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, seq, &p)
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at.checked_add(4)?)?.try_into().ok().map(u32::from_ne_bytes)
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    buf.get(at..at.checked_add(2)?)?.try_into().ok().map(u16::from_ne_bytes)
}

/// Checks the kernel's answer: one `NLMSG_ERROR` for `seq` whose error is 0.
pub(crate) fn parse_ack(buf: &[u8], seq: u32, request: &'static str) -> Result<(), NetError> {
    let bad = |what| NetError::BadAnswer { request, what };
    let len = u32_at(buf, 0).ok_or(bad("shorter than nlmsghdr"))?;
    let kind = u16_at(buf, 4).ok_or(bad("shorter than nlmsghdr"))?;
    let got_seq = u32_at(buf, 8).ok_or(bad("shorter than nlmsghdr"))?;
    if usize::try_from(len).ok() != Some(buf.len()).filter(|&l| l >= NLMSG_HDR_LEN + 4) {
        return Err(bad("nlmsg_len does not match the datagram"));
    }
    if kind != NLMSG_ERROR {
        return Err(bad("not an NLMSG_ERROR acknowledgement"));
    }
    if got_seq != seq {
        return Err(bad("sequence number does not match the request"));
    }
    // struct nlmsgerr { int error; struct nlmsghdr msg; }: error is 0 or -errno.
    let error = u32_at(buf, NLMSG_HDR_LEN).map(|e| i32::from_ne_bytes(e.to_ne_bytes()));
    match error {
        Some(0) => Ok(()),
        Some(e) => Err(NetError::Refused { request, errno: Errno::from_raw(e.checked_neg().unwrap_or(i32::MAX)) }),
        None => Err(bad("truncated nlmsgerr")),
    }
}

/// A network interface seen in `/sys/class/net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Nic {
    /// Interface name, e.g. `eth0`.
    pub(crate) name: String,
    /// Bound driver (`device/driver` link target), e.g. `virtio_net`.
    pub(crate) driver: Option<String>,
}

/// Picks the NIC to configure: a `virtio_net` one if any, else the first; never `lo`.
/// Names are compared in sorted order so that the choice is deterministic.
pub(crate) fn choose_nic(nics: &[Nic]) -> Option<&Nic> {
    let mut candidates: Vec<&Nic> = nics.iter().filter(|n| n.name != "lo").collect();
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    candidates.iter().find(|n| n.driver.as_deref() == Some("virtio_net")).or(candidates.first()).copied()
}

const SYS_NET: &str = "/sys/class/net";

fn sysfs_err(path: &Path) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |source| NetError::Sysfs { path: path.display().to_string(), source }
}

fn list_nics() -> Result<Vec<Nic>, NetError> {
    let dir = Path::new(SYS_NET);
    let mut nics = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(sysfs_err(dir))? {
        let entry = entry.map_err(sysfs_err(dir))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        let driver = std::fs::read_link(entry.path().join("device/driver"))
            .ok()
            .and_then(|t| t.file_name().and_then(|f| f.to_str()).map(str::to_owned));
        nics.push(Nic { name, driver });
    }
    Ok(nics)
}

fn ifindex(name: &str) -> Result<u32, NetError> {
    let path = Path::new(SYS_NET).join(name).join("ifindex");
    let text = std::fs::read_to_string(&path).map_err(sysfs_err(&path))?;
    text.trim().parse().map_err(|_| NetError::Sysfs {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a decimal ifindex"),
    })
}

/// A NETLINK_ROUTE socket with a sequence counter.
struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    fn open() -> Result<Netlink, NetError> {
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkRoute)
            .map_err(|errno| NetError::Socket { call: "socket", errno })?;
        Ok(Netlink { fd, seq: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn request(&mut self, msg: &[u8], seq: u32, request: &'static str) -> Result<(), NetError> {
        let kernel = NetlinkAddr::new(0, 0);
        sendto(self.fd.as_raw_fd(), msg, &kernel, MsgFlags::empty())
            .map_err(|errno| NetError::Socket { call: "sendto", errno })?;
        let mut buf = [0u8; 1024];
        let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())
            .map_err(|errno| NetError::Socket { call: "recv", errno })?;
        parse_ack(buf.get(..n).unwrap_or_default(), seq, request)
    }

    fn link_up(&mut self, ifindex: u32) -> Result<(), NetError> {
        let seq = self.next_seq();
        self.request(&link_up_message(seq, ifindex), seq, "RTM_NEWLINK (set up)")
    }
}

/// Brings up `lo`, and with `net` also the first NIC with its address and default route.
/// Returns a description for the log.
pub(crate) fn bring_up(net: Option<NetConfig>) -> Result<Vec<String>, NetError> {
    let mut nl = Netlink::open()?;
    let mut log = Vec::new();
    nl.link_up(ifindex("lo")?)?;
    log.push("lo up".to_owned());
    let Some(net) = net else {
        log.push("no cvm.net= on the kernel command line: loopback only".to_owned());
        return Ok(log);
    };
    let name = wait_for_nic()?;
    let index = ifindex(&name)?;
    nl.link_up(index)?;
    let seq = nl.next_seq();
    nl.request(&add_address_message(seq, index, net.addr, net.prefix), seq, "RTM_NEWADDR")?;
    let seq = nl.next_seq();
    nl.request(&default_route_message(seq, index, net.gateway), seq, "RTM_NEWROUTE")?;
    log.push(format!("{name} {}/{} gw {}", net.addr, net.prefix, net.gateway));
    Ok(log)
}

/// Polls `/sys/class/net` until a NIC besides `lo` exists (driver probing may lag module load).
fn wait_for_nic() -> Result<String, NetError> {
    let start = Instant::now();
    loop {
        if let Some(nic) = choose_nic(&list_nics()?) {
            return Ok(nic.name.clone());
        }
        if start.elapsed() >= NIC_WAIT {
            return Err(NetError::NoNic { seconds: NIC_WAIT.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// iproute2's sequence number in the captures below.
    const SEQ: u32 = 0x6b07_5170;

    // Captured on x86_64 with `unshare -n strace -e trace=sendmsg -e write=3 ip ...` (lo = ifindex 1).
    const IP_LINK_SET_LO_UP: [u8; 32] = [
        0x20, 0x00, 0x00, 0x00, 0x10, 0x00, 0x05, 0x00, 0x70, 0x51, 0x07, 0x6b, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    ];
    const IP_ADDR_ADD: [u8; 40] = [
        0x28, 0x00, 0x00, 0x00, 0x14, 0x00, 0x05, 0x06, 0x70, 0x51, 0x07, 0x6b, 0x00, 0x00, 0x00, 0x00, //
        0x02, 0x18, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x02, 0x0f, //
        0x08, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x02, 0x0f,
    ];
    const IP_ROUTE_ADD_DEFAULT: [u8; 44] = [
        0x2c, 0x00, 0x00, 0x00, 0x18, 0x00, 0x05, 0x06, 0x70, 0x51, 0x07, 0x6b, 0x00, 0x00, 0x00, 0x00, //
        0x02, 0x00, 0x00, 0x00, 0xfe, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x05, 0x00, //
        0x0a, 0x00, 0x02, 0x02, 0x08, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn link_up_matches_iproute2() {
        assert_eq!(link_up_message(SEQ, 1), IP_LINK_SET_LO_UP);
    }

    #[test]
    fn add_address_matches_iproute2() {
        assert_eq!(add_address_message(SEQ, 1, Ipv4Addr::new(10, 0, 2, 15), 24), IP_ADDR_ADD);
    }

    #[test]
    fn default_route_matches_iproute2() {
        assert_eq!(default_route_message(SEQ, 1, Ipv4Addr::new(10, 0, 2, 2)), IP_ROUTE_ADD_DEFAULT);
    }

    fn ack(seq: u32, error: i32) -> Vec<u8> {
        let mut p = error.to_ne_bytes().to_vec();
        p.extend_from_slice(&link_up_message(seq, 1)[..NLMSG_HDR_LEN]);
        message(NLMSG_ERROR, 0, seq, &p)
    }

    #[test]
    fn accepts_ack() {
        parse_ack(&ack(7, 0), 7, "x").unwrap();
    }

    #[test]
    fn rejects_error_answers() {
        let err = parse_ack(&ack(7, -17), 7, "RTM_NEWADDR").unwrap_err();
        assert!(matches!(err, NetError::Refused { errno: Errno::EEXIST, .. }), "{err}");
        assert!(matches!(parse_ack(&ack(8, 0), 7, "x"), Err(NetError::BadAnswer { .. })));
        let mut truncated = ack(7, 0);
        truncated.truncate(10);
        assert!(matches!(parse_ack(&truncated, 7, "x"), Err(NetError::BadAnswer { .. })));
        let mut wrong_len = ack(7, 0);
        wrong_len.push(0);
        assert!(matches!(parse_ack(&wrong_len, 7, "x"), Err(NetError::BadAnswer { .. })));
        let not_error = message(RTM_NEWLINK, 0, 7, &[0; 16]);
        assert!(matches!(parse_ack(&not_error, 7, "x"), Err(NetError::BadAnswer { .. })));
    }

    fn nic(name: &str, driver: Option<&str>) -> Nic {
        Nic { name: name.into(), driver: driver.map(Into::into) }
    }

    #[test]
    fn chooses_virtio_nic_then_first_by_name() {
        let nics =
            [nic("lo", None), nic("eth1", Some("e1000")), nic("ens3", Some("virtio_net")), nic("eth0", Some("e1000"))];
        assert_eq!(choose_nic(&nics).map(|n| n.name.as_str()), Some("ens3"));
        let nics = [nic("lo", None), nic("eth1", Some("e1000")), nic("eth0", None)];
        assert_eq!(choose_nic(&nics).map(|n| n.name.as_str()), Some("eth0"));
        assert_eq!(choose_nic(&[nic("lo", None)]), None);
    }
}
