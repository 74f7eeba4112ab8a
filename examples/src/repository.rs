//! The public business repository on loopback: a synthetic registry extract, bulk-issued by
//! the Ontario Business Registry's issuer, pulled from its public feed into a running
//! `bizcred-repository`, and the next extract's changes (dissolutions, name changes,
//! amalgamations) followed. Used by `restaurant-journey --repository` and the browser test.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::extract::{self, CorporateStatus, ExtractLine};
use crate::{free_port, Service, World};

/// The seed of the demo's population.
pub const SEED: u64 = 2026;

/// The repository demo, running.
#[derive(Debug)]
pub struct RepositoryDemo {
    /// The registry and the four agencies.
    pub world: World,
    /// The running repository's URL.
    pub url: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// A verifier data directory synced with the registry
    /// (`bizcred-verifier --data-dir <it> verify-record <file>`).
    pub verifier_dir: PathBuf,
    /// Businesses in the extract.
    pub count: usize,
    /// The extract generation last issued.
    pub generation: u32,
    /// An active business with a French accented name and a business number.
    pub pick: ExtractLine,
    /// The corporation number of an active business that generation 2 dissolves.
    pub dissolving: String,
    /// What the last bulk run reported (`bizcred-issuer bulk --json`).
    pub bulk: Value,
    /// The running repository.
    pub service: Option<Service>,
}

fn first_dissolved_in_next(count: usize) -> Result<String> {
    let before = extract::generate(SEED, count, 1)?;
    let after = extract::generate(SEED, count, 2)?;
    for (a, b) in before.zip(after).take(count) {
        if a.corporation_number == b.corporation_number
            && a.corporate_status == CorporateStatus::Active
            && b.corporate_status == CorporateStatus::Dissolved
        {
            return Ok(a.corporation_number);
        }
    }
    bail!("generation 2 of {count} businesses dissolves none: use a larger count")
}

impl RepositoryDemo {
    fn obr(&self) -> Result<usize> {
        self.world
            .agencies
            .iter()
            .position(|a| a.spec.key == "obr")
            .ok_or_else(|| anyhow!("no OBR agency"))
    }

    /// Writes generation `generation` of the extract and bulk-issues it at the OBR (its
    /// service stopped meanwhile: the embedded store has one owner), then restarts it.
    fn issue(&mut self, generation: u32) -> Result<Value> {
        let file = self
            .world
            .root
            .path()
            .join(format!("extract-{generation}.jsonl"));
        let out =
            std::fs::File::create(&file).with_context(|| format!("creating {}", file.display()))?;
        extract::write_jsonl(SEED, self.count, generation, out)?;
        let i = self.obr()?;
        if let Some(s) = self.world.agencies[i].service.take() {
            s.stop();
        }
        let config = self.world.agencies[i].config.to_string_lossy().into_owned();
        let (code, report, err) = self.world.bins.run(
            "bizcred-issuer",
            &[
                "bulk",
                "--config",
                &config,
                "--from",
                &file.to_string_lossy(),
            ],
        )?;
        self.world.start_agency(i)?;
        if code != 0 {
            bail!("bizcred-issuer bulk exited {code}: {report} {err}");
        }
        self.generation = generation;
        Ok(report)
    }

    /// Issues the next extract (generation 2: dissolutions, name changes, amalgamations) and
    /// returns once the repository shows [`RepositoryDemo::dissolving`] dissolved.
    pub fn next_generation(&mut self) -> Result<()> {
        self.bulk = self.issue(self.generation + 1)?;
        let url = format!("{}/api/businesses/{}", self.url, self.dissolving);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::blocking::get(&url) {
                if let Ok(v) = r.json::<Value>() {
                    if v["summary"]["corporate_status"] == "dissolved" {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "the repository does not show {} dissolved after the next extract",
            self.dissolving
        )
    }
}

/// Starts the registry and the agencies, generates an extract of `count` businesses,
/// bulk-issues it at the OBR, and fills a running repository from the OBR's public feed.
pub fn repository_demo(count: usize, say: &mut dyn FnMut(&str)) -> Result<RepositoryDemo> {
    let world = World::start(&[])?;
    let (_, pick) = extract::french_business(SEED, count, 1)?
        .ok_or_else(|| anyhow!("no French-named business among {count}: use a larger count"))?;
    let dissolving = first_dissolved_in_next(count)?;
    let dir = world.root.path().join("repository");
    let verifier_dir = world.root.path().join("reader");
    let mut demo = RepositoryDemo {
        world,
        url: String::new(),
        dir,
        verifier_dir,
        count,
        generation: 0,
        pick,
        dissolving,
        bulk: Value::Null,
        service: None,
    };
    let started = Instant::now();
    demo.bulk = demo.issue(1)?;
    say(&format!(
        "the Ontario Business Registry issued {} public certificates of incorporation from a {count}-business extract in {:.1} s",
        demo.bulk["issued"],
        started.elapsed().as_secs_f64()
    ));
    let bins = demo.world.bins.clone();
    let d = demo.dir.to_string_lossy().into_owned();
    let anchor = demo.world.anchor.to_string();
    let registry = demo.world.registry_url.clone();
    let obr = demo.world.agencies[demo.obr()?].url.clone();
    bins.ok(
        "bizcred-repository",
        &[
            "--data-dir",
            &d,
            "init",
            "--anchor",
            &anchor,
            "--registry",
            &registry,
        ],
    )?;
    bins.ok("bizcred-repository", &["--data-dir", &d, "sync"])?;
    let started = Instant::now();
    let pulled = bins.ok("bizcred-repository", &["--data-dir", &d, "pull", &obr])?;
    say(&format!(
        "the repository verified and indexed them from the OBR's public feed in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        pulled["pulled"][0]["report"]
    ));
    let port = free_port()?;
    demo.url = format!("http://localhost:{port}");
    demo.service = Some(Service::start(
        &bins,
        "bizcred-repository",
        &[
            "--data-dir",
            &d,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--issuer",
            &obr,
            "--interval",
            "1",
        ],
        &demo.url,
    )?);
    let v = demo.verifier_dir.to_string_lossy().into_owned();
    bins.ok(
        "bizcred-verifier",
        &[
            "--data-dir",
            &v,
            "init",
            "--anchor",
            &anchor,
            "--registry",
            &registry,
        ],
    )?;
    bins.ok("bizcred-verifier", &["--data-dir", &v, "sync"])?;
    Ok(demo)
}
