//! The ELF reader for untrusted initrd files: header, linkage (static, static-pie, dynamic with its interpreter) and
//! sections. What the sealing stage concludes from them lives in `crate::seal` (`linkage`, `signatures`).
//!
//! Only 64-bit little-endian x86-64 ELF files are accepted (the only guest architecture cvmforge builds); anything
//! else is rejected with an error naming what was found. Every read goes through the bounds-checked
//! [`cvmforge_measure::reader::Reader`], so a truncated or hostile file yields an [`ElfError`], never a panic.
//! Field offsets follow the System V gABI, "ELF Header" and "Program Header" (`Elf64_Ehdr`, `Elf64_Phdr`,
//! `Elf64_Shdr`).
//!
//! # Example
//!
//! ```
//! use cvmforge::format::elf::{ElfInfo, Linkage};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let bytes = cvmforge::format::elf::testing::executable(Some("/lib64/ld-linux-x86-64.so.2"));
//! let info = ElfInfo::parse(&bytes)?;
//! assert_eq!(info.linkage, Linkage::Dynamic { interpreter: "/lib64/ld-linux-x86-64.so.2".into() });
//! # Ok(()) }
//! ```

// A parser of untrusted bytes: no panics, no unchecked indexing (`../shared/style.md`, "For cvmforge" 3).
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use cvmforge_measure::reader::{ReadError, Reader};
use serde::Serialize;
use thiserror::Error;

/// The four magic bytes at the start of every ELF file (gABI `EI_MAG0..EI_MAG3`).
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";
/// Size of `Elf64_Ehdr`.
const EHDR_SIZE: usize = 64;
/// Size of `Elf64_Phdr`.
const PHDR_SIZE: usize = 56;
/// Size of `Elf64_Shdr`.
const SHDR_SIZE: usize = 64;
/// `EI_CLASS` value of 64-bit objects.
const ELFCLASS64: u8 = 2;
/// `EI_DATA` value of little-endian objects.
const ELFDATA2LSB: u8 = 1;
/// How much of a file [`ElfInfo::parse`] needs in practice: linkers place the program headers and `PT_INTERP` right
/// after the ELF header, so a caller checking a large payload may pass only its first `HEADER_PREFIX` bytes (a file
/// whose tables lie further out then fails with a truncation error rather than a wrong answer).
pub const HEADER_PREFIX: usize = 64 * 1024;
/// `e_machine` of AMD x86-64.
pub const EM_X86_64: u16 = 62;
/// `p_type` of the program interpreter segment.
const PT_INTERP: u32 = 3;
/// `sh_type` of a section that occupies no file space (`.bss`).
const SHT_NOBITS: u32 = 8;
/// `e_shstrndx` escape: the real index is in `sh_link` of section 0.
const SHN_XINDEX: u16 = 0xffff;
/// Longest interpreter path accepted (Linux `BINPRM_BUF_SIZE`-independent; `PATH_MAX`).
const MAX_INTERP_LEN: usize = 4096;

/// A failure to parse an ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ElfError {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file: starts with {found:02x?}, expected 7f 45 4c 46 (`\\x7fELF`)")]
    NotElf {
        /// The first bytes found (up to four).
        found: Vec<u8>,
    },
    /// `EI_CLASS` is not 64-bit.
    #[error("unsupported ELF class {class} (EI_CLASS at offset 0x4): only 64-bit (2) x86-64 binaries are supported")]
    UnsupportedClass {
        /// The `EI_CLASS` byte.
        class: u8,
    },
    /// `EI_DATA` is not little-endian.
    #[error("unsupported ELF data encoding {data} (EI_DATA at offset 0x5): only little-endian (1) is supported")]
    UnsupportedEncoding {
        /// The `EI_DATA` byte.
        data: u8,
    },
    /// `e_machine` is not x86-64.
    #[error("unsupported ELF machine {machine} (e_machine at offset 0x12): only x86-64 ({EM_X86_64}) is supported")]
    UnsupportedMachine {
        /// The `e_machine` value.
        machine: u16,
    },
    /// A table entry size differs from the ELF64 structure size.
    #[error("`{what}` is {found} bytes, expected {expected}")]
    BadEntrySize {
        /// The header field (`e_phentsize`, `e_shentsize`).
        what: &'static str,
        /// Value found.
        found: u16,
        /// Size of the ELF64 structure.
        expected: usize,
    },
    /// An offset or size does not fit the address space.
    #[error("`{what}` value {value:#x} does not fit in memory")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// `PT_INTERP` is not a NUL-terminated UTF-8 path.
    #[error(
        "PT_INTERP segment at offset {offset:#x} is not a NUL-terminated UTF-8 path of at most {MAX_INTERP_LEN} bytes"
    )]
    BadInterpreter {
        /// File offset of the segment.
        offset: u64,
    },
    /// A section name does not lie inside the section-name string table.
    #[error("section {index}: name offset {name_offset:#x} is outside the section-name string table")]
    BadSectionName {
        /// Section index.
        index: usize,
        /// `sh_name` value.
        name_offset: u32,
    },
    /// A read ran past the end of the file.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// `e_type`: the kind of ELF object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElfType {
    /// `ET_REL` (1): relocatable object, e.g. a kernel module.
    Relocatable,
    /// `ET_EXEC` (2): fixed-address executable.
    Executable,
    /// `ET_DYN` (3): position-independent executable or shared object.
    Shared,
    /// `ET_CORE` (4) or any other value: not something the guest can run.
    Other(u16),
}

impl ElfType {
    fn from_raw(raw: u16) -> Self {
        match raw {
            1 => ElfType::Relocatable,
            2 => ElfType::Executable,
            3 => ElfType::Shared,
            other => ElfType::Other(other),
        }
    }
}

/// How an executable is linked, as seen by the kernel's ELF loader (`fs/binfmt_elf.c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Linkage {
    /// `ET_EXEC` without `PT_INTERP`: runs as is.
    Static,
    /// `ET_DYN` without `PT_INTERP`: self-relocating static-pie (a shared library looks the same, but the kernel
    /// would also jump to its entry point without a loader).
    StaticPie,
    /// Has `PT_INTERP`: the kernel first loads the named dynamic loader, which must exist in the initrd.
    Dynamic {
        /// The interpreter path, e.g. `/lib64/ld-linux-x86-64.so.2`.
        interpreter: String,
    },
    /// A relocatable object or core file: not executable.
    NotExecutable,
}

impl Linkage {
    /// True when the kernel can run the file with no other file present.
    pub fn is_static(&self) -> bool {
        matches!(self, Linkage::Static | Linkage::StaticPie)
    }
}

/// One section header with its resolved name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Name from the section-name string table.
    pub name: String,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_offset`.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
}

/// The facts cvmforge needs about an ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ElfInfo {
    /// `e_type`.
    pub kind: ElfType,
    /// `e_machine` (always [`EM_X86_64`] after a successful parse).
    pub machine: u16,
    /// Static, static-pie or dynamic.
    pub linkage: Linkage,
}

/// Raw header fields needed to walk the program and section tables.
struct Header {
    kind: u16,
    machine: u16,
    phoff: u64,
    shoff: u64,
    phentsize: u16,
    phnum: u16,
    shentsize: u16,
    shnum: u16,
    shstrndx: u16,
}

impl ElfInfo {
    /// Parses the ELF header and program headers of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
        let header = parse_header(bytes)?;
        let kind = ElfType::from_raw(header.kind);
        let interpreter = find_interpreter(bytes, &header)?;
        let linkage = match (kind, interpreter) {
            (ElfType::Executable | ElfType::Shared, Some(interpreter)) => Linkage::Dynamic { interpreter },
            (ElfType::Executable, None) => Linkage::Static,
            (ElfType::Shared, None) => Linkage::StaticPie,
            _ => Linkage::NotExecutable,
        };
        Ok(ElfInfo { kind, machine: header.machine, linkage })
    }
}

fn parse_header(bytes: &[u8]) -> Result<Header, ElfError> {
    let magic: Vec<u8> = bytes.iter().take(4).copied().collect();
    if magic != ELF_MAGIC {
        return Err(ElfError::NotElf { found: magic });
    }
    let mut r = Reader::new(bytes);
    r.skip("e_ident[EI_MAG]", 4)?;
    let class = r.u8("e_ident[EI_CLASS]")?;
    if class != ELFCLASS64 {
        return Err(ElfError::UnsupportedClass { class });
    }
    let data = r.u8("e_ident[EI_DATA]")?;
    if data != ELFDATA2LSB {
        return Err(ElfError::UnsupportedEncoding { data });
    }
    r.skip("e_ident (rest)", 10)?;
    let kind = r.u16_le("e_type")?;
    let machine = r.u16_le("e_machine")?;
    if machine != EM_X86_64 {
        return Err(ElfError::UnsupportedMachine { machine });
    }
    r.skip("e_version, e_entry", 12)?;
    let phoff = r.u64_le("e_phoff")?;
    let shoff = r.u64_le("e_shoff")?;
    r.skip("e_flags, e_ehsize", 6)?;
    let phentsize = r.u16_le("e_phentsize")?;
    let phnum = r.u16_le("e_phnum")?;
    let shentsize = r.u16_le("e_shentsize")?;
    let shnum = r.u16_le("e_shnum")?;
    let shstrndx = r.u16_le("e_shstrndx")?;
    debug_assert_eq!(r.offset(), EHDR_SIZE);
    Ok(Header { kind, machine, phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx })
}

/// Returns a reader over the table of `count` entries of `entry_size` at `offset`.
fn table<'a>(
    bytes: &'a [u8],
    what: &'static str,
    offset: u64,
    count: usize,
    entry_size: usize,
) -> Result<Reader<'a>, ElfError> {
    let len = count.checked_mul(entry_size).ok_or(ElfError::TooLarge { what, value: offset })?;
    let mut r = Reader::at(bytes, what, offset)?;
    Ok(r.sub(what, len)?)
}

fn to_usize(what: &'static str, value: u64) -> Result<usize, ElfError> {
    usize::try_from(value).map_err(|_| ElfError::TooLarge { what, value })
}

fn find_interpreter(bytes: &[u8], h: &Header) -> Result<Option<String>, ElfError> {
    if h.phnum == 0 {
        return Ok(None);
    }
    if usize::from(h.phentsize) != PHDR_SIZE {
        return Err(ElfError::BadEntrySize { what: "e_phentsize", found: h.phentsize, expected: PHDR_SIZE });
    }
    let mut r = table(bytes, "program header table", h.phoff, usize::from(h.phnum), PHDR_SIZE)?;
    for _ in 0..h.phnum {
        let p_type = r.u32_le("p_type")?;
        r.skip("p_flags", 4)?;
        let p_offset = r.u64_le("p_offset")?;
        r.skip("p_vaddr, p_paddr", 16)?;
        let p_filesz = r.u64_le("p_filesz")?;
        r.skip("p_memsz, p_align", 16)?;
        if p_type == PT_INTERP {
            return read_interpreter(bytes, p_offset, p_filesz).map(Some);
        }
    }
    Ok(None)
}

fn read_interpreter(bytes: &[u8], offset: u64, size: u64) -> Result<String, ElfError> {
    let len = to_usize("PT_INTERP p_filesz", size)?;
    if len > MAX_INTERP_LEN {
        return Err(ElfError::BadInterpreter { offset });
    }
    let raw = Reader::at(bytes, "PT_INTERP p_offset", offset)?.take("PT_INTERP segment", len)?;
    let path = raw.strip_suffix(&[0]).ok_or(ElfError::BadInterpreter { offset })?;
    match std::str::from_utf8(path) {
        Ok(p) if !p.is_empty() && !p.contains('\0') => Ok(p.to_string()),
        _ => Err(ElfError::BadInterpreter { offset }),
    }
}

/// Parses the section header table of `bytes` and resolves section names.
pub fn sections(bytes: &[u8]) -> Result<Vec<Section>, ElfError> {
    let h = parse_header(bytes)?;
    if h.shoff == 0 {
        return Ok(Vec::new());
    }
    if usize::from(h.shentsize) != SHDR_SIZE {
        return Err(ElfError::BadEntrySize { what: "e_shentsize", found: h.shentsize, expected: SHDR_SIZE });
    }
    // gABI "Sections": e_shnum == 0 and e_shstrndx == SHN_XINDEX move the real values into section 0.
    let first = read_shdr(&mut table(bytes, "section header 0", h.shoff, 1, SHDR_SIZE)?)?;
    let count = match h.shnum {
        0 => to_usize("section 0 sh_size (section count)", first.size)?,
        n => usize::from(n),
    };
    let strndx = match h.shstrndx {
        SHN_XINDEX => to_usize("section 0 sh_link (e_shstrndx)", u64::from(first.link))?,
        n => usize::from(n),
    };
    let mut r = table(bytes, "section header table", h.shoff, count, SHDR_SIZE)?;
    let raw = (0..count).map(|_| read_shdr(&mut r)).collect::<Result<Vec<_>, _>>()?;
    let names = match raw.get(strndx) {
        Some(s) => section_data(bytes, s.offset, s.size, "section-name string table")?,
        None => &[],
    };
    raw.iter().enumerate().map(|(index, s)| resolve(names, index, s)).collect()
}

/// A section header before its name is resolved.
struct RawSection {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

fn read_shdr(r: &mut Reader<'_>) -> Result<RawSection, ElfError> {
    let name = r.u32_le("sh_name")?;
    let kind = r.u32_le("sh_type")?;
    r.skip("sh_flags, sh_addr", 16)?;
    let offset = r.u64_le("sh_offset")?;
    let size = r.u64_le("sh_size")?;
    let link = r.u32_le("sh_link")?;
    r.skip("sh_info, sh_addralign, sh_entsize", 20)?;
    Ok(RawSection { name, kind, offset, size, link })
}

fn section_data<'a>(bytes: &'a [u8], offset: u64, size: u64, what: &'static str) -> Result<&'a [u8], ElfError> {
    let len = to_usize(what, size)?;
    Ok(Reader::at(bytes, what, offset)?.take(what, len)?)
}

fn resolve(names: &[u8], index: usize, s: &RawSection) -> Result<Section, ElfError> {
    let bad = ElfError::BadSectionName { index, name_offset: s.name };
    let start = usize::try_from(s.name).map_err(|_| bad.clone())?;
    let tail = names.get(start..).ok_or(bad.clone())?;
    let end = tail.iter().position(|&b| b == 0).ok_or(bad.clone())?;
    let name = std::str::from_utf8(tail.get(..end).unwrap_or_default()).map_err(|_| bad)?;
    Ok(Section { name: name.to_string(), kind: s.kind, offset: s.offset, size: s.size })
}

/// Returns the bytes of the first section called `name`, or `None` when there is none (or it is `SHT_NOBITS`).
pub fn section_bytes<'a>(bytes: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, ElfError> {
    let Some(s) = sections(bytes)?.into_iter().find(|s| s.name == name && s.kind != SHT_NOBITS) else {
        return Ok(None);
    };
    section_data(bytes, s.offset, s.size, "section contents").map(Some)
}

/// Builders of small synthetic ELF files, for doctests and tests in this crate and its integration tests.
#[doc(hidden)]
#[allow(clippy::indexing_slicing)] // builds synthetic inputs at fixed offsets; never reads untrusted bytes
pub mod testing {
    /// An x86-64 ELF header with `e_type`, a program header table of the given `(p_type, payload)` segments, and
    /// a section table of the given `(name, contents)` sections.
    pub fn build(e_type: u16, segments: &[(u32, &[u8])], sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&e_type.to_le_bytes());
        out[18..20].copy_from_slice(&62u16.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        let phoff = out.len();
        let data_start = phoff + 56 * segments.len();
        let mut data = Vec::new();
        let mut phdrs = Vec::new();
        for (p_type, payload) in segments {
            let off = (data_start + data.len()) as u64;
            phdrs.extend_from_slice(&p_type.to_le_bytes());
            phdrs.extend_from_slice(&4u32.to_le_bytes());
            phdrs.extend_from_slice(&off.to_le_bytes());
            phdrs.extend_from_slice(&[0u8; 16]);
            phdrs.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            phdrs.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            phdrs.extend_from_slice(&1u64.to_le_bytes());
            data.extend_from_slice(payload);
        }
        if !segments.is_empty() {
            out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
            out[54..56].copy_from_slice(&56u16.to_le_bytes());
            out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&phdrs);
        out.extend_from_slice(&data);
        if !sections.is_empty() {
            append_sections(&mut out, sections);
        }
        out
    }

    fn append_sections(out: &mut Vec<u8>, sections: &[(&str, &[u8])]) {
        // Section 0 is the null section; the last one is .shstrtab.
        let mut names = vec![0u8];
        let mut offsets = Vec::new();
        for (name, contents) in sections {
            offsets.push((names.len() as u32, out.len() as u64, contents.len() as u64));
            names.extend_from_slice(name.as_bytes());
            names.push(0);
            out.extend_from_slice(contents);
        }
        let shstr_name = names.len() as u32;
        names.extend_from_slice(b".shstrtab\0");
        let shstr_off = out.len() as u64;
        out.extend_from_slice(&names);
        let shoff = out.len() as u64;
        out.extend_from_slice(&[0u8; 64]);
        let mut shdr = |name: u32, kind: u32, off: u64, size: u64| {
            out.extend_from_slice(&name.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&[0u8; 16]);
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&[0u8; 24]);
        };
        for (name, off, size) in offsets {
            shdr(name, 1, off, size);
        }
        shdr(shstr_name, 3, shstr_off, names.len() as u64);
        let count = (sections.len() + 2) as u16;
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&count.to_le_bytes());
        out[62..64].copy_from_slice(&(count - 1).to_le_bytes());
    }

    /// A PIE executable (`ET_DYN`) with the given interpreter, or a static-pie one without.
    pub fn executable(interpreter: Option<&str>) -> Vec<u8> {
        match interpreter {
            Some(i) => build(3, &[(3, format!("{i}\0").as_bytes())], &[]),
            None => build(3, &[(1, b"code")], &[]),
        }
    }

    /// A relocatable object (like a kernel module) with a `.modinfo` section holding the given `key=value` pairs.
    pub fn kernel_module(modinfo: &[&str]) -> Vec<u8> {
        let mut info = Vec::new();
        for kv in modinfo {
            info.extend_from_slice(kv.as_bytes());
            info.push(0);
        }
        build(1, &[], &[(".text", b"\x90\x90"), (".modinfo", &info)])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{build, executable, kernel_module};
    use super::*;

    #[test]
    fn parses_dynamic_static_and_static_pie() {
        let dynamic = ElfInfo::parse(&executable(Some("/lib64/ld-linux-x86-64.so.2"))).unwrap();
        assert_eq!(dynamic.kind, ElfType::Shared);
        assert_eq!(dynamic.linkage, Linkage::Dynamic { interpreter: "/lib64/ld-linux-x86-64.so.2".into() });
        assert_eq!(ElfInfo::parse(&executable(None)).unwrap().linkage, Linkage::StaticPie);
        assert_eq!(ElfInfo::parse(&build(2, &[(1, b"x")], &[])).unwrap().linkage, Linkage::Static);
        assert_eq!(ElfInfo::parse(&kernel_module(&["a=b"])).unwrap().linkage, Linkage::NotExecutable);
    }

    #[test]
    fn parses_real_host_binaries_if_present() {
        // Independent reference: `readelf -l /bin/sh` on Debian/Ubuntu x86-64 names this interpreter.
        let Ok(bytes) = std::fs::read("/bin/sh") else { return };
        let info = ElfInfo::parse(&bytes).unwrap();
        assert_eq!(info.linkage, Linkage::Dynamic { interpreter: "/lib64/ld-linux-x86-64.so.2".into() });
        assert!(sections(&bytes).unwrap().iter().any(|s| s.name == ".text"));
    }

    #[test]
    fn parses_a_prefix_of_a_large_binary() {
        let Ok(bytes) = std::fs::read("/bin/bash") else { return };
        let prefix = &bytes[..HEADER_PREFIX.min(bytes.len())];
        assert_eq!(ElfInfo::parse(prefix).unwrap(), ElfInfo::parse(&bytes).unwrap());
    }

    #[test]
    fn reads_sections_by_name() {
        let ko = kernel_module(&["vermagic=6.1.0 SMP", "name=x"]);
        assert_eq!(section_bytes(&ko, ".modinfo").unwrap().unwrap(), b"vermagic=6.1.0 SMP\0name=x\0");
        assert_eq!(section_bytes(&ko, ".nothere").unwrap(), None);
    }

    #[test]
    fn rejects_non_elf_and_other_architectures() {
        assert_eq!(ElfInfo::parse(b"#!/bin/sh\n").unwrap_err(), ElfError::NotElf { found: b"#!/b".to_vec() });
        let mut elf = executable(None);
        elf[4] = 1;
        assert_eq!(ElfInfo::parse(&elf).unwrap_err(), ElfError::UnsupportedClass { class: 1 });
        let mut elf = executable(None);
        elf[18] = 183;
        assert_eq!(ElfInfo::parse(&elf).unwrap_err(), ElfError::UnsupportedMachine { machine: 183 });
        let mut elf = executable(None);
        elf[5] = 2;
        assert!(ElfInfo::parse(&elf).unwrap_err().to_string().contains("little-endian"));
    }

    #[test]
    fn rejects_truncated_and_hostile_headers_without_panicking() {
        let elf = executable(Some("/lib/ld.so"));
        for len in 0..elf.len() {
            let _ = ElfInfo::parse(&elf[..len]);
            let _ = sections(&elf[..len]);
        }
        let mut hostile = elf.clone();
        hostile[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(ElfInfo::parse(&hostile), Err(ElfError::Read(ReadError::OutOfBounds { .. }))));
        let ko = kernel_module(&["a=b"]);
        for i in 0..ko.len() {
            let mut bad = ko.clone();
            bad[i] ^= 0xff;
            let _ = ElfInfo::parse(&bad);
            let _ = section_bytes(&bad, ".modinfo");
        }
    }

    #[test]
    fn rejects_interpreter_without_nul() {
        let elf = build(3, &[(3, b"/lib/ld.so")], &[]);
        assert!(matches!(ElfInfo::parse(&elf), Err(ElfError::BadInterpreter { .. })));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = ElfInfo::parse(&bytes);
            let _ = sections(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_modules(at in 0usize..400, value in proptest::prelude::any::<u8>(), cut in 0usize..400) {
            let mut ko = kernel_module(&["vermagic=6.1.0 SMP", "depends=a,b"]);
            let len = ko.len();
            ko[at % len] = value;
            ko.truncate(len - cut % len);
            let _ = ElfInfo::parse(&ko);
            let _ = section_bytes(&ko, ".modinfo");
        }
    }
}
