//! The sealing step of the build: runs `crate::seal::check::check` over the recipe's initrd layout and kernel.

use std::path::Path;

use super::{find, inputs, BuildError, BuildOptions};
use crate::recipe::dest::Layout;
use crate::recipe::LoadedRecipe;

/// Runs the sealing checks over the recipe's layout and stages its kernel modules.
pub(super) fn seal(
    loaded: &LoadedRecipe,
    root: &Path,
    layout: &Layout,
    inputs: &[inputs::Input],
    options: &BuildOptions,
) -> Result<crate::seal::check::SealOutcome, BuildError> {
    use crate::recipe::dest::{FileSource, Kind};
    use crate::seal::check::{Content, ModuleTree, SealEntry, SealEntryKind, SealInputs};
    use sha2::Digest;
    let recipe = &loaded.recipe;
    let kernel_input = find(inputs, "kernel")?;
    let kernel = crate::sys::regular_file::read_input(&kernel_input.resolved)
        .map_err(|source| inputs::input_io(kernel_input, source))?;
    // The checks must see the kernel that was hashed (and will be copied).
    if <[u8; 32]>::from(sha2::Sha256::digest(&kernel)) != kernel_input.sha256 {
        let (role, path) = (kernel_input.role.clone(), kernel_input.path.clone());
        return Err(BuildError::InputChanged { role, path });
    }
    let init = find(inputs, "init")?;
    let modes: Vec<(String, u32)> = layout
        .entries
        .iter()
        .filter_map(|(dest, e)| match e.kind {
            Kind::Directory { mode, .. } | Kind::File { mode, .. } | Kind::CharDevice { mode, .. } => {
                Some((dest.clone(), mode))
            }
            _ => None,
        })
        .collect();
    let mut entries = Vec::with_capacity(layout.entries.len());
    for (dest, entry) in &layout.entries {
        let kind = match &entry.kind {
            Kind::Directory { .. } => SealEntryKind::Dir,
            Kind::CharDevice { .. } => SealEntryKind::Other,
            Kind::Symlink { target } => SealEntryKind::Symlink { target: target.clone() },
            Kind::File { source: FileSource::InitConfig, .. } => {
                SealEntryKind::File(Content::Bytes(recipe.init_config(&[], &recipe.init_volumes()).to_bytes()))
            }
            Kind::File { source: FileSource::Init, .. } => SealEntryKind::File(Content::Path(init.resolved.clone())),
            Kind::File { source: FileSource::Payload(i), .. } => {
                let f = recipe.initrd.files.get(*i).ok_or(BuildError::Internal { what: "payload index" })?;
                let input = find(inputs, &format!("file:{}", f.dst))?;
                SealEntryKind::File(Content::Path(input.resolved.clone()))
            }
            Kind::File { source: FileSource::Module(_), .. } => continue,
        };
        entries.push(SealEntry { dest: dest.clone(), kind });
    }
    let config = match &recipe.kernel.config {
        Some(_) => Some(find(inputs, "kernel-config")?.resolved.clone()),
        None => None,
    };
    let tree = match &recipe.kernel.modules {
        Some(m) => Some(inputs::resolve_dir(loaded, root, "kernel.modules.tree", &m.tree)?),
        None => None,
    };
    let command = recipe.initrd.command.first().map(String::as_str).unwrap_or_default();
    Ok(crate::seal::check::check(&SealInputs {
        kernel: &kernel,
        kernel_config: config.as_deref(),
        cmdline: &recipe.kernel.cmdline,
        entries: &entries,
        init: &init.resolved,
        command,
        modules: tree
            .as_deref()
            .zip(recipe.kernel.modules.as_ref())
            .map(|(tree, m)| ModuleTree { tree, load: &m.load }),
        sealing: &recipe.sealing,
        strict: options.strict,
        modes: &modes,
        allow_unsealed: options.allow_unsealed,
    })?)
}
