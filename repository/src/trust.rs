//! The repository's trust: the registry anchor pinned at `init`, and every bundle accepted
//! since, replayed at start-up. A bundle is kept only once it verifies on top of the state
//! held (an older or forked one never replaces it); the verified state is what intake and
//! status refreshes read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use bizcred_core::trust::bundle::{self, TrustAnchor};
use bizcred_core::trust::state::TrustState;

use crate::{corrupt, io, Error};

/// Bundles kept before the next sync fetches the whole log again in one.
const MAX_BUNDLE_FILES: usize = 64;

/// What `init` pins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustConfig {
    /// The registry's anchor.
    pub anchor: TrustAnchor,
    /// The registry's URL (bundles).
    pub registry: String,
}

/// The trust directory (`<data>/trust`).
#[derive(Debug)]
pub struct TrustDir {
    dir: PathBuf,
    /// What `init` pinned.
    pub config: TrustConfig,
}

impl TrustDir {
    /// Pins `config` in a new directory.
    pub fn init(dir: &Path, config: TrustConfig) -> Result<TrustDir, Error> {
        let file = dir.join("trust.json");
        if file.exists() {
            return Err(Error::AlreadyInitialized(dir.display().to_string()));
        }
        std::fs::create_dir_all(dir.join("bundles")).map_err(io(dir))?;
        let text = serde_json::to_vec_pretty(&config).map_err(corrupt("trust configuration"))?;
        std::fs::write(&file, text).map_err(io(&file))?;
        Ok(TrustDir {
            dir: dir.to_owned(),
            config,
        })
    }

    /// Opens the directory.
    pub fn open(dir: &Path) -> Result<TrustDir, Error> {
        let file = dir.join("trust.json");
        let text = match std::fs::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialized(dir.display().to_string()))
            }
            Err(e) => return Err(io(&file)(e)),
        };
        Ok(TrustDir {
            dir: dir.to_owned(),
            config: serde_json::from_slice(&text).map_err(corrupt("trust configuration"))?,
        })
    }

    fn bundle_files(&self) -> Result<Vec<PathBuf>, Error> {
        let bdir = self.dir.join("bundles");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&bdir)
            .map_err(io(&bdir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// The state of every bundle kept, replayed in order; `None` before the first sync. A
    /// compaction interrupted after its bundle was kept is finished first.
    pub fn load(&self, now: i64) -> Result<Option<TrustState>, Error> {
        self.finish_compaction()?;
        let mut held: Option<TrustState> = None;
        for f in self.bundle_files()? {
            let text = std::fs::read_to_string(&f).map_err(io(&f))?;
            held = Some(bundle::import(held.as_ref(), &self.config.anchor, &text, now)?.state);
        }
        Ok(held)
    }

    /// Fetches the registry's bundle continuing from `held` and keeps it when it verifies;
    /// answers the new state. With many bundles kept, the whole log is fetched in one and
    /// replaces them (checked to reach at least the state held).
    pub async fn sync(&self, held: Option<&TrustState>, now: i64) -> Result<TrustState, Error> {
        let files = self.bundle_files()?;
        let compact = files.len() >= MAX_BUNDLE_FILES;
        let from = if compact {
            0
        } else {
            held.map_or(0, TrustState::size)
        };
        let text = bizcred_verifier::sync::fetch(&self.config.registry, from).await?;
        let base = if compact { None } else { held };
        let state = bundle::import(base, &self.config.anchor, &text, now)?.state;
        if let (true, Some(h)) = (compact, held) {
            if state.size() < h.size() {
                return Err(Error::Bundle(bundle::BundleError::Malformed(
                    "the registry's whole log is shorter than the one held".into(),
                )));
            }
            // The whole log must extend the one held: the same first entries, else the
            // registry rewrote its history (a fork) and nothing is replaced.
            let size = usize::try_from(h.size()).unwrap_or(usize::MAX);
            if state
                .leaves
                .get(..size)
                .is_none_or(|prefix| bizcred_core::trust::merkle::root(prefix) != h.root())
            {
                return Err(Error::Bundle(bundle::BundleError::Inconsistent));
            }
        }
        let bdir = self.dir.join("bundles");
        if compact {
            // Kept whole under a name the replay skips, then the old bundles go, then it takes
            // the first place: a crash at any point leaves either the old bundles or the new
            // one, and `load` finishes what was begun.
            let tmp = bdir.join(COMPACTED_TMP);
            std::fs::write(&tmp, text.as_bytes()).map_err(io(&tmp))?;
            sync_file(&tmp)?;
            let kept = bdir.join(COMPACTED);
            std::fs::rename(&tmp, &kept).map_err(io(&kept))?;
            sync_file(&bdir)?;
            self.finish_compaction()?;
            return Ok(state);
        }
        let n = files.len();
        let tmp = bdir.join(format!("{n:06}.json.tmp"));
        std::fs::write(&tmp, text.as_bytes()).map_err(io(&tmp))?;
        sync_file(&tmp)?;
        let dest = bdir.join(format!("{n:06}.json"));
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_file(&bdir)?;
        Ok(state)
    }

    /// When a compacted bundle was kept: removes the bundles it replaces and puts it first.
    fn finish_compaction(&self) -> Result<(), Error> {
        let bdir = self.dir.join("bundles");
        let kept = bdir.join(COMPACTED);
        if !kept.exists() {
            return Ok(());
        }
        for f in self.bundle_files()? {
            std::fs::remove_file(&f).map_err(io(&f))?;
        }
        sync_file(&bdir)?;
        let first = bdir.join(format!("{:06}.json", 0));
        std::fs::rename(&kept, &first).map_err(io(&first))?;
        sync_file(&bdir)?;
        Ok(())
    }
}

/// A compacted bundle, kept whole, before it replaces the bundles (`load` skips it: not
/// `.json`).
const COMPACTED: &str = "compacted.json.kept";
/// A compacted bundle being written.
const COMPACTED_TMP: &str = "compacted.json.tmp";

/// Makes a written file (or a directory's entries: its renames and removals) durable.
fn sync_file(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}
