//! How big a firmware image is, read from its ELF.

use std::path::Path;

/// The flash (every loaded section) and static RAM (what is written or zeroed at start)
/// of the ELF at `path`.
pub fn image_size(path: &Path) -> (u64, u64) {
    use object::{Object, ObjectSection, SectionFlags, SectionKind};
    let bytes = std::fs::read(path).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    let (mut flash, mut ram) = (0, 0);
    for section in elf.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else { continue };
        if sh_flags & u64::from(object::elf::SHF_ALLOC) == 0 {
            continue;
        }
        match section.kind() {
            SectionKind::UninitializedData | SectionKind::UninitializedTls => ram += section.size(),
            _ if sh_flags & u64::from(object::elf::SHF_WRITE) != 0 => {
                flash += section.size();
                ram += section.size();
            }
            _ => flash += section.size(),
        }
    }
    (flash, ram)
}
