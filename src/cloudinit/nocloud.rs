//! NoCloud seeds: how a VM with no cloud metadata service gets its
//! user-data.
//!
//! cloud-init's NoCloud datasource reads `user-data`, `meta-data` and
//! optionally `network-config` from a volume labelled `CIDATA` (or
//! `cidata`), vfat or ISO 9660. A local VM (QEMU) boots with such a volume
//! attached. spuff writes it in-process as a small FAT12 image with the
//! `fatfs` crate, so the user's machine needs no `mkfs.vfat`, mtools or
//! `genisoimage` (docs/adr/0016-nocloud-seed.md).
//!
//! The meta-data carries a fresh `instance-id` per VM: cloud-init runs its
//! once-per-instance modules (users, keys, write_files, runcmd) only for an
//! instance id it has not seen, so a snapshot booted again as a new VM must
//! get a new id.
//!
//! # Examples
//! ```no_run
//! use spuff::cloudinit::nocloud::{Seed, meta_data};
//!
//! # fn demo(user_data: &str) -> std::io::Result<()> {
//! let seed = Seed {
//!     user_data: user_data.as_bytes(),
//!     meta_data: meta_data("spuff-0a1b2c3d4e5f6a7b", "spuff-dev"),
//!     network_config: None,
//! };
//! seed.write("/tmp/vm/seed.img")?;
//! # Ok(()) }
//! ```

use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// The volume label cloud-init looks for (it accepts `CIDATA` and
/// `cidata`; FAT labels are upper case).
pub const LABEL: &str = "CIDATA";

/// The files of a NoCloud seed.
#[derive(Debug, Clone)]
pub struct Seed<'a> {
    /// The `#cloud-config` user-data, as rendered (it may hold secrets: the
    /// image is written with mode 0600 on Unix).
    pub user_data: &'a [u8],
    /// The meta-data (see [`meta_data`]).
    pub meta_data: String,
    /// A network-config (version 2), when the default (DHCP on the first
    /// NIC) is not wanted.
    pub network_config: Option<&'a str>,
}

/// Meta-data naming the instance and its host name, as YAML.
///
/// Both values are quoted, so no value can change the document's shape.
pub fn meta_data(instance_id: &str, hostname: &str) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        super::escape::yaml_quote(instance_id),
        super::escape::yaml_quote(hostname)
    )
}

impl Seed<'_> {
    /// The files as (name, bytes), in the order they are written.
    fn files(&self) -> Vec<(&'static str, &[u8])> {
        let mut files = vec![
            ("user-data", self.user_data),
            ("meta-data", self.meta_data.as_bytes()),
        ];
        if let Some(n) = self.network_config {
            files.push(("network-config", n.as_bytes()));
        }
        files
    }

    /// Writes the seed as a FAT volume labelled [`LABEL`] at `path`,
    /// replacing any file there (mode 0600 on Unix: the user-data holds the
    /// VM's host key and agent token).
    ///
    /// # Errors
    /// I/O errors creating or writing the image.
    pub fn write(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let payload: usize = self.files().iter().map(|(_, b)| b.len()).sum();
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path)?;
        file.set_len(image_size(payload))?;
        self.write_to(&mut file)?;
        file.sync_all()
    }

    /// Formats `disk` (already sized) and writes the files into it.
    fn write_to<D: io::Read + Write + Seek>(&self, disk: &mut D) -> io::Result<()> {
        let mut label = [b' '; 11];
        label[..LABEL.len()].copy_from_slice(LABEL.as_bytes());
        disk.seek(SeekFrom::Start(0))?;
        // A volume id of its own per seed, as mkfs.vfat gives (fatfs's
        // default is a constant).
        let volume_id = getrandom::u32().unwrap_or(0x5350_5546);
        fatfs::format_volume(
            &mut *disk,
            fatfs::FormatVolumeOptions::new()
                .volume_label(label)
                .volume_id(volume_id)
                .fat_type(fatfs::FatType::Fat12),
        )?;
        disk.seek(SeekFrom::Start(0))?;
        let fs = fatfs::FileSystem::new(&mut *disk, fatfs::FsOptions::new())?;
        {
            let root = fs.root_dir();
            for (name, bytes) in self.files() {
                let mut f = root.create_file(name)?;
                f.truncate()?;
                f.write_all(bytes)?;
                f.flush()?;
            }
        }
        fs.unmount()
    }
}

/// A FAT12 volume comfortably larger than the files: at least 1 MiB,
/// otherwise twice the payload plus 256 KiB for the tables, in whole MiB.
fn image_size(payload: usize) -> u64 {
    let want = (payload as u64) * 2 + 256 * 1024;
    want.div_ceil(1 << 20).max(1) << 20
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use super::*;

    fn read_back(disk: &mut Cursor<Vec<u8>>) -> (String, Vec<(String, Vec<u8>)>) {
        disk.set_position(0);
        let fs = fatfs::FileSystem::new(&mut *disk, fatfs::FsOptions::new())
            .unwrap_or_else(|e| panic!("{e}"));
        let label = fs.volume_label();
        let mut files = Vec::new();
        for entry in fs.root_dir().iter() {
            let entry = entry.unwrap_or_else(|e| panic!("{e}"));
            let mut bytes = Vec::new();
            entry
                .to_file()
                .read_to_end(&mut bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            files.push((entry.file_name(), bytes));
        }
        (label.trim_end().to_string(), files)
    }

    #[test]
    fn seed_should_hold_the_files_under_the_cidata_label() {
        let user_data = b"#cloud-config\nusers: []\n".to_vec();
        let seed = Seed {
            user_data: &user_data,
            meta_data: meta_data("iid-1", "spuff-dev"),
            network_config: Some("version: 2\n"),
        };
        let mut disk = Cursor::new(vec![0u8; image_size(100) as usize]);
        seed.write_to(&mut disk).unwrap_or_else(|e| panic!("{e}"));
        let (label, files) = read_back(&mut disk);
        assert_eq!(label, LABEL);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["user-data", "meta-data", "network-config"]);
        assert_eq!(files[0].1, user_data);
        assert_eq!(
            String::from_utf8_lossy(&files[1].1),
            "instance-id: \"iid-1\"\nlocal-hostname: \"spuff-dev\"\n"
        );
    }

    #[test]
    fn large_user_data_should_fit() {
        let user_data = vec![b'x'; 200 * 1024];
        let seed = Seed {
            user_data: &user_data,
            meta_data: meta_data("iid-2", "h"),
            network_config: None,
        };
        let mut disk = Cursor::new(vec![0u8; image_size(user_data.len() + 64) as usize]);
        seed.write_to(&mut disk).unwrap_or_else(|e| panic!("{e}"));
        let (_, files) = read_back(&mut disk);
        assert_eq!(files[0].1.len(), user_data.len());
    }

    #[test]
    fn meta_data_values_should_not_change_the_document() {
        let m = meta_data("a\nb: c", "h\"x");
        assert_eq!(m.lines().count(), 2, "{m}");
        assert!(m.starts_with("instance-id: \""), "{m}");
    }
}
