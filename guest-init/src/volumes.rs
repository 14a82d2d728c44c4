//! Data volumes: a read-only EROFS image under dm-verity on a virtio disk, mounted where init.json says.
//!
//! The verity parameters (data and hash block counts, root hash, salt) come from the measured kernel command line
//! only (`cvm.volume=<name>:<data blocks>:<hash blocks>:<root hash>:<salt>`), never from the disk, which the host
//! controls. The disk is the virtio disk whose serial is the volume's name; whichever disk the host gives, a byte
//! that differs from what the root hash covers reads as an I/O error, never as data.
//!
//! The device-mapper device is made with the `DM_DEV_CREATE`, `DM_TABLE_LOAD` and `DM_DEV_SUSPEND` (resume) ioctls
//! on `/dev/mapper/control`: no userspace tool is in the image. Any failure stops the boot (init powers off and
//! says why): a payload must never start without the data it was measured with.

// The device-mapper ioctls are the one place this init calls `ioctl` with a buffer of its own layout.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use nix::mount::{mount, MsFlags};

use crate::cmdline::VolumeParams;
use crate::config::VolumeMount;

/// `struct dm_ioctl` is 312 bytes; its payload starts after it.
const DM_IOCTL_SIZE: usize = 312;
/// `struct dm_target_spec` is 40 bytes, followed by the target's parameter string.
const DM_TARGET_SPEC_SIZE: usize = 40;
/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
const fn dm_request(nr: u32) -> u32 {
    (3 << 30) | ((DM_IOCTL_SIZE as u32) << 16) | (0xfd << 8) | nr
}
const DM_DEV_CREATE: u32 = dm_request(3);
const DM_DEV_SUSPEND: u32 = dm_request(6);
const DM_TABLE_LOAD: u32 = dm_request(9);
/// `DM_READONLY_FLAG`: the table is read-only.
const DM_READONLY_FLAG: u32 = 1;
/// The device-mapper interface version this code speaks (4.0.0 is every kernel since 2.6).
const DM_VERSION: [u32; 3] = [4, 0, 0];
const CONTROL: &str = "/dev/mapper/control";

/// Why a volume could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VolumeError {
    #[error("volume `{name}` is in init.json but has no `cvm.volume={name}:...` on the kernel command line")]
    NoParams { name: String },
    #[error("`cvm.volume={name}:...` is on the kernel command line but init.json has no such volume")]
    Unexpected { name: String },
    #[error("volume `{name}`: no virtio disk has the serial `{name}` (disks: {disks})")]
    NoDisk { name: String, disks: String },
    #[error("volume `{name}`: disk `{disk}` has {sectors} sectors, the volume needs {needed}")]
    TooSmall { name: String, disk: String, sectors: u64, needed: u64 },
    #[error("volume `{name}`: {what}: {errno}")]
    Sys { name: String, what: String, errno: nix::errno::Errno },
    #[error("volume `{name}`: cannot read `{path}`")]
    Read {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Sets up and mounts every volume; returns one log line per volume.
pub(crate) fn set_up(mounts: &[VolumeMount], params: &[VolumeParams]) -> Result<Vec<String>, VolumeError> {
    if let Some(extra) = params.iter().find(|p| !mounts.iter().any(|m| m.name == p.name)) {
        return Err(VolumeError::Unexpected { name: extra.name.clone() });
    }
    let mut lines = Vec::new();
    for m in mounts {
        let p =
            params.iter().find(|p| p.name == m.name).ok_or_else(|| VolumeError::NoParams { name: m.name.clone() })?;
        lines.push(set_up_one(m, p)?);
    }
    Ok(lines)
}

fn set_up_one(m: &VolumeMount, p: &VolumeParams) -> Result<String, VolumeError> {
    let name = &m.name;
    let sys = |what: &str| {
        let what = what.to_string();
        move |errno| VolumeError::Sys { name: name.clone(), what, errno }
    };
    let (disk, devno) = find_disk(name)?;
    let sectors = read_sys(name, &format!("/sys/block/{disk}/size"))?.trim().parse::<u64>().unwrap_or(0);
    let needed = (p.data_blocks + p.hash_blocks) * 8;
    if sectors < needed {
        return Err(VolumeError::TooSmall { name: name.clone(), disk, sectors, needed });
    }
    let table = format!(
        "1 {devno} {devno} 4096 4096 {data} {data} sha256 {root} {salt}",
        data = p.data_blocks,
        root = p.root_hash,
        salt = if p.salt.is_empty() { "-" } else { &p.salt },
    );
    let dm_name = format!("cvm-{name}");
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CONTROL)
        .map_err(|source| VolumeError::Read { name: name.clone(), path: CONTROL.into(), source })?;
    let fd = control.as_raw_fd();
    let mut create = header(&dm_name, DM_IOCTL_SIZE, 0, 0);
    dm_ioctl(fd, DM_DEV_CREATE, &mut create).map_err(sys("DM_DEV_CREATE"))?;
    let mut load = table_load(&dm_name, p.data_blocks * 8, &table);
    dm_ioctl(fd, DM_TABLE_LOAD, &mut load).map_err(sys("DM_TABLE_LOAD (verity)"))?;
    let mut resume = header(&dm_name, DM_IOCTL_SIZE, 0, 0);
    dm_ioctl(fd, DM_DEV_SUSPEND, &mut resume).map_err(sys("DM_DEV_SUSPEND (resume)"))?;
    let node = dm_node(name, &dm_name)?;
    let flags = MsFlags::MS_RDONLY | m.flags;
    mount(Some(node.as_str()), m.mount.as_str(), Some("erofs"), flags, None::<&str>)
        .map_err(sys(&format!("mount {node} on {}", m.mount)))?;
    Ok(format!(
        "volume {name}: {disk} ({devno}) under dm-verity root {}… as {node}, mounted on {} ({})",
        p.root_hash.get(..16).unwrap_or(&p.root_hash),
        m.mount,
        m.flag_names.join(",")
    ))
}

/// The virtio disk whose serial is `name`: (`vdX`, `MAJOR:MINOR`).
fn find_disk(name: &str) -> Result<(String, String), VolumeError> {
    let read = |source| VolumeError::Read { name: name.into(), path: "/sys/block".into(), source };
    let mut disks: Vec<String> = std::fs::read_dir("/sys/block")
        .map_err(read)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|d| d.starts_with("vd"))
        .collect();
    disks.sort();
    for disk in &disks {
        let serial = std::fs::read_to_string(format!("/sys/block/{disk}/serial")).unwrap_or_default();
        if serial.trim_end_matches(['\n', '\0']) == name {
            let devno = read_sys(name, &format!("/sys/block/{disk}/dev"))?.trim().to_string();
            return Ok((disk.clone(), devno));
        }
    }
    Err(VolumeError::NoDisk {
        name: name.into(),
        disks: if disks.is_empty() { "none".into() } else { disks.join(", ") },
    })
}

/// `/dev/dm-N` of the device-mapper device named `dm_name` (devtmpfs made the node when the device was created).
fn dm_node(name: &str, dm_name: &str) -> Result<String, VolumeError> {
    let read = |source| VolumeError::Read { name: name.into(), path: "/sys/block".into(), source };
    for entry in std::fs::read_dir("/sys/block").map_err(read)? {
        let Some(dev) = entry.ok().and_then(|e| e.file_name().into_string().ok()) else { continue };
        if dev.starts_with("dm-")
            && std::fs::read_to_string(format!("/sys/block/{dev}/dm/name")).is_ok_and(|n| n.trim_end() == dm_name)
        {
            return Ok(format!("/dev/{dev}"));
        }
    }
    Err(VolumeError::Read {
        name: name.into(),
        path: format!("/sys/block/dm-*/dm/name = {dm_name}"),
        source: std::io::ErrorKind::NotFound.into(),
    })
}

fn read_sys(name: &str, path: &str) -> Result<String, VolumeError> {
    std::fs::read_to_string(path).map_err(|source| VolumeError::Read { name: name.into(), path: path.into(), source })
}

/// A `struct dm_ioctl` for device `dm_name`, in a buffer of `size` bytes (8-byte aligned through `u64`s).
fn header(dm_name: &str, size: usize, target_count: u32, flags: u32) -> Vec<u64> {
    let mut words = vec![0u64; size.div_ceil(8)];
    let bytes = as_bytes(&mut words);
    put_u32(bytes, 0, DM_VERSION[0]);
    put_u32(bytes, 4, DM_VERSION[1]);
    put_u32(bytes, 8, DM_VERSION[2]);
    put_u32(bytes, 12, size as u32); // data_size
    put_u32(bytes, 16, DM_IOCTL_SIZE as u32); // data_start
    put_u32(bytes, 20, target_count);
    put_u32(bytes, 28, flags);
    // name[128] at offset 48, NUL-terminated (the volume name is at most 32 characters).
    for (dst, src) in bytes.iter_mut().skip(48).take(127).zip(dm_name.bytes()) {
        *dst = src;
    }
    words
}

/// `DM_TABLE_LOAD` with one `verity` target over `sectors` sectors.
fn table_load(dm_name: &str, sectors: u64, params: &str) -> Vec<u64> {
    let spec_len = (DM_TARGET_SPEC_SIZE + params.len() + 1).div_ceil(8) * 8;
    let size = DM_IOCTL_SIZE.div_ceil(8) * 8 + spec_len;
    let mut words = header(dm_name, size, 1, DM_READONLY_FLAG);
    let bytes = as_bytes(&mut words);
    let at = DM_IOCTL_SIZE;
    put_u64(bytes, at, 0); // sector_start
    put_u64(bytes, at + 8, sectors); // length
    put_u32(bytes, at + 16, 0); // status
    put_u32(bytes, at + 20, spec_len as u32); // next
    for (dst, src) in bytes.iter_mut().skip(at + 24).take(15).zip(b"verity".iter()) {
        *dst = *src;
    }
    for (dst, src) in bytes.iter_mut().skip(at + DM_TARGET_SPEC_SIZE).zip(params.bytes()) {
        *dst = src;
    }
    words
}

fn as_bytes(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: `u8` has no alignment or validity requirements, and the slice covers exactly the words' memory.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    if let Some(dst) = bytes.get_mut(at..at + 4) {
        dst.copy_from_slice(&value.to_ne_bytes());
    }
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    if let Some(dst) = bytes.get_mut(at..at + 8) {
        dst.copy_from_slice(&value.to_ne_bytes());
    }
}

fn dm_ioctl(fd: i32, request: u32, buffer: &mut [u64]) -> Result<(), nix::errno::Errno> {
    // SAFETY: `buffer` is a `struct dm_ioctl` whose `data_size` is the buffer's length (set by `header`), so the
    // kernel reads and writes only inside it; the fd is the open device-mapper control device.
    let rc = unsafe { nix::libc::ioctl(fd, request as nix::libc::c_ulong, buffer.as_mut_ptr()) };
    nix::errno::Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_kernel_headers() {
        // From <linux/dm-ioctl.h>: DM_DEV_CREATE = _IOWR(0xfd, 3, struct dm_ioctl) with sizeof 312.
        assert_eq!(DM_DEV_CREATE, 0xc138_fd03);
        assert_eq!(DM_DEV_SUSPEND, 0xc138_fd06);
        assert_eq!(DM_TABLE_LOAD, 0xc138_fd09);
    }

    #[test]
    fn table_load_lays_out_header_target_and_parameters() {
        let mut words = table_load("cvm-models", 800, "1 254:16 254:16 4096 4096 100 100 sha256 ab cd");
        let bytes = as_bytes(&mut words).to_vec();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(u32::from_ne_bytes(bytes[12..16].try_into().unwrap()) as usize, bytes.len());
        assert_eq!(u32::from_ne_bytes(bytes[16..20].try_into().unwrap()), 312);
        assert_eq!(u32::from_ne_bytes(bytes[20..24].try_into().unwrap()), 1);
        assert_eq!(&bytes[48..58], b"cvm-models");
        assert_eq!(u64::from_ne_bytes(bytes[320..328].try_into().unwrap()), 800);
        assert_eq!(&bytes[336..342], b"verity");
        assert!(bytes[352..].starts_with(b"1 254:16 254:16 4096 4096 100 100 sha256 ab cd\0"));
    }
}
