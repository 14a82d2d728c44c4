//! Recipe validation: every value serde cannot check (identifiers, command line, command, environment, payload
//! user, `init.json` size, compression level, input paths), and the initrd layout built once to find path
//! conflicts. Runs in [`Recipe::load`], before anything is read or written.

use super::{dest, CompressionKind, Problem, Recipe, MAX_CMDLINE_LEN, MAX_INIT_CONFIG_LEN};
use crate::format::compress::{Compression, DEFAULT_ZSTD_LEVEL};

impl Recipe {
    /// Checks every value that serde cannot check, and builds the initrd layout once to find path conflicts.
    pub fn validate(&self) -> Result<(), Problem> {
        check_identifier("name", &self.name, true)?;
        check_identifier("version", &self.version, false)?;
        check_cmdline(&self.kernel.cmdline)?;
        self.check_command()?;
        for (name, value) in &self.initrd.env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(Problem::BadEnvName { name: name.clone() });
            }
            if value.contains('\0') {
                return Err(Problem::BadEnvValue { name: name.clone() });
            }
        }
        if self.initrd.user == 0 {
            return Err(Problem::RootPayload { field: "user" });
        }
        if self.gid() == 0 {
            return Err(Problem::RootPayload { field: "group" });
        }
        let volumes = self.init_volumes();
        let size = self.init_config(&[], &volumes).to_bytes().len();
        if size > MAX_INIT_CONFIG_LEN {
            return Err(Problem::InitConfigTooLarge { size, limit: MAX_INIT_CONFIG_LEN });
        }
        self.compression()?;
        super::volume::check_volumes(&self.volumes)?;
        for (field, path) in self.input_fields() {
            if path.is_empty() || path.contains('\0') {
                return Err(Problem::EmptyInputPath { field });
            }
        }
        let layout = dest::Layout::from_recipe(self)?;
        let program = &self.initrd.command[0];
        if !layout.is_file_or_symlink(program) {
            return Err(Problem::CommandNotInInitrd { program: program.clone() });
        }
        Ok(())
    }

    /// The compression parameters for the compressor.
    pub fn compression(&self) -> Result<Compression, Problem> {
        let level = self.initrd.compression_level;
        match (self.initrd.compression, level) {
            (CompressionKind::None, None) => Ok(Compression::None),
            (CompressionKind::None, Some(level)) => {
                Err(Problem::BadCompressionLevel { algorithm: "none", level, expected: "no level" })
            }
            (CompressionKind::Gzip, level) => {
                let level = level.unwrap_or(6);
                match u32::try_from(level) {
                    Ok(l @ 1..=9) => Ok(Compression::Gzip { level: l }),
                    _ => Err(Problem::BadCompressionLevel { algorithm: "gzip", level, expected: "1-9" }),
                }
            }
            (CompressionKind::Zstd, level) => match level.unwrap_or(DEFAULT_ZSTD_LEVEL) {
                l @ 1..=19 => Ok(Compression::Zstd { level: l }),
                l => Err(Problem::BadCompressionLevel { algorithm: "zstd", level: l, expected: "1-19" }),
            },
        }
    }

    /// Every input path field with its recipe field name.
    fn input_fields(&self) -> Vec<(String, &str)> {
        let mut fields = vec![("kernel.path".to_string(), self.kernel.path.as_str())];
        fields.push(("initrd.init".to_string(), self.initrd.init.as_str()));
        if let Some(p) = &self.kernel.config {
            fields.push(("kernel.config".to_string(), p.as_str()));
        }
        if let Some(m) = &self.kernel.modules {
            fields.push(("kernel.modules.tree".to_string(), m.tree.as_str()));
        }
        for (i, f) in self.initrd.files.iter().enumerate() {
            fields.push((format!("initrd.files[{i}].src"), f.src.as_str()));
        }
        if let Some(p) = &self.firmware.snp {
            fields.push(("firmware.snp".to_string(), p.as_str()));
        }
        if let Some(p) = &self.firmware.tdx {
            fields.push(("firmware.tdx".to_string(), p.as_str()));
        }
        for (i, v) in self.volumes.iter().enumerate() {
            if let Some(source) = &v.source {
                fields.push((format!("volumes[{i}].source"), source.as_str()));
            }
            for (j, f) in v.files.iter().enumerate() {
                fields.push((format!("volumes[{i}].files[{j}].src"), f.src.as_str()));
            }
        }
        fields
    }

    fn check_command(&self) -> Result<(), Problem> {
        let Some(program) = self.initrd.command.first() else {
            return Err(Problem::BadCommand { reason: "is empty: it needs at least the program to run" });
        };
        if !program.starts_with('/') {
            return Err(Problem::BadCommand { reason: "must start with an absolute path inside the initrd" });
        }
        if self.initrd.command.iter().any(|a| a.contains('\0')) {
            return Err(Problem::BadCommand { reason: "has an argument with a NUL byte" });
        }
        Ok(())
    }
}

fn check_identifier(field: &'static str, value: &str, strict: bool) -> Result<(), Problem> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    let ok = if strict {
        value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) && value.chars().all(allowed)
    } else {
        value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.chars().all(|c| allowed(c) || c.is_ascii_uppercase() || c == '+')
    };
    if ok && value.len() <= 64 {
        return Ok(());
    }
    let expected = if strict {
        "at most 64 characters of [a-z0-9._-], starting with a letter or digit"
    } else {
        "at most 64 characters of [A-Za-z0-9._+-], starting with a letter or digit"
    };
    Err(Problem::BadIdentifier { field, value: value.to_string(), expected })
}

fn check_cmdline(cmdline: &str) -> Result<(), Problem> {
    if cmdline.len() > MAX_CMDLINE_LEN {
        return Err(Problem::BadCmdline { reason: "is longer than 2047 bytes (x86 COMMAND_LINE_SIZE)" });
    }
    if cmdline.chars().any(char::is_control) {
        return Err(Problem::BadCmdline { reason: "contains a control character (newline, tab or NUL)" });
    }
    Ok(())
}
