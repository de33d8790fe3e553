//! Finding the RDB fixtures, shared by the formats crate's test files.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// The fixtures folder: `$FERROKEY_FIXTURES`, else the steering repo's
/// shared/fixtures beside this repository, else the repo's own copy.
pub fn fixtures_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FERROKEY_FIXTURES") {
        return Some(PathBuf::from(dir));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [manifest.join("../../shared/fixtures"), manifest.join("../fixtures")].into_iter().find(|c| c.join("rdb").is_dir())
}

/// Every `.rdb` file under `root/rdb`, in a stable order.
pub fn rdb_files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rdb") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root.join("rdb"), &mut out);
    out
}
