//! A small ext4 filesystem (an image file on a loop device) mounted over a node's data
//! directory, to make its storage fail for real: fill it up (ENOSPC) or make its Raft log
//! immutable (`chattr +i`: EPERM even for root). Needs root (CI runs as root); always
//! unmounted and removed when dropped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small filesystem holding a copy of a data directory, mounted over it.
pub struct SmallDisk {
    dir: PathBuf,
    image: PathBuf,
    filler: PathBuf,
}

fn run(cmd: &str, args: &[&str], path: &Path) -> bool {
    Command::new(cmd)
        .args(args)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

impl SmallDisk {
    /// Moves `dir`'s files onto a new ext4 filesystem of `size_mib` MiB mounted at `dir`.
    /// `None` (and `dir` untouched) when mounting is not allowed here (not root).
    pub fn over(dir: &Path, size_mib: u32) -> Option<SmallDisk> {
        let saved = dir.with_extension("saved");
        let image = dir.with_extension("img");
        let made = fs::File::create(&image)
            .and_then(|f| f.set_len(u64::from(size_mib) << 20))
            .is_ok()
            && run("mkfs.ext4", &["-q", "-F"], &image);
        fs::rename(dir, &saved).expect("move the data dir aside");
        fs::create_dir_all(dir).expect("mount point");
        let mounted = made
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success());
        if !mounted {
            let _ = fs::remove_file(&image);
            fs::remove_dir(dir).expect("remove mount point");
            fs::rename(&saved, dir).expect("restore the data dir");
            return None;
        }
        for entry in fs::read_dir(&saved).expect("read the saved dir") {
            let entry = entry.expect("entry");
            fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy onto tmpfs");
        }
        fs::remove_dir_all(&saved).expect("remove the saved dir");
        Some(SmallDisk {
            dir: dir.to_path_buf(),
            image,
            filler: dir.join("filler"),
        })
    }

    /// Fills the filesystem up: writes a file until the disk says it is full.
    pub fn fill(&self) {
        let mut file = fs::File::create(&self.filler).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }

    /// Frees what [`Tmpfs::fill`] took.
    pub fn free(&self) {
        let _ = fs::remove_file(&self.filler);
    }

    /// Makes `file` (in the data dir) immutable (`lock = true`) or writable again.
    pub fn immutable(&self, file: &str, lock: bool) {
        let flag = if lock { "+i" } else { "-i" };
        assert!(
            run("chattr", &[flag], &self.dir.join(file)),
            "chattr {flag} {file}"
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let _ = Command::new("chattr").arg("-i").arg(entry.path()).status();
            }
        }
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = fs::remove_file(&self.image);
    }
}
