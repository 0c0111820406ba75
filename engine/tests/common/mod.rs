//! Helpers shared by the engine's integration tests.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// List files held in memory, keyed by the path the loader asks for (under `/school`).
pub(crate) fn lists(files: &[(&str, &str)]) -> impl Fn(&Path) -> io::Result<String> {
    let map: HashMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (Path::new("/school").join(p), t.to_string()))
        .collect();
    move |p: &Path| {
        map.get(p)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}
