//! The restaurant journey harness: starts the real bizcred binaries on loopback (registry,
//! four agency issuers, the bank's verifier) with sled storage in a temporary directory, and
//! drives them through their CLIs and HTTP APIs exactly as their users would.
//!
//! Used by the `restaurant-journey` binary and by the end-to-end tests in `tests/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

use bizcred_schemas::CredentialType;

pub mod extract;
pub mod fixture;
pub mod portal;
pub mod repository;

pub use portal::{portal_demo, PortalDemo};
pub use repository::{repository_demo, RepositoryDemo};

/// Passphrase for every key file in the demo (never use a fixed passphrase in production).
pub const DEMO_PASSPHRASE: &str = "demo passphrase: not for production";

/// The passphrase variables of the four binaries (the harness sets each to
/// [`DEMO_PASSPHRASE`]).
pub const PASSPHRASE_VARS: [&str; 4] = [
    "BIZCRED_REGISTRY_PASSPHRASE",
    "BIZCRED_ISSUER_PASSPHRASE",
    "BIZCRED_VERIFIER_PASSPHRASE",
    "BIZCRED_WALLET_PASSPHRASE",
];

/// The bizcred binaries next to the running executable.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

const BINARIES: [&str; 6] = [
    "bizcred-registry",
    "bizcred-issuer",
    "bizcred-verifier",
    "bizcred-wallet",
    "bizcred-repository",
    "bizcred-portal",
];

/// The newest modification time of the sources binary `bin` is built from (its own crate and
/// the workspace crates it depends on).
fn newest_source(bin: &str) -> Option<std::time::SystemTime> {
    fn walk(p: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    walk(&e.path(), newest);
                }
            }
        } else if p.extension().is_some_and(|x| x == "rs" || x == "toml") {
            if let Ok(m) = meta.modified() {
                *newest = Some(newest.map_or(m, |n| n.max(m)));
            }
        }
    }
    let own: &[&str] = match bin {
        "bizcred-registry" => &["registry"],
        "bizcred-issuer" => &["issuer", "verifier"],
        "bizcred-verifier" => &["verifier"],
        "bizcred-repository" => &["repository", "verifier", "web"],
        "bizcred-portal" => &["portal", "repository", "verifier", "web"],
        _ => &["holder-cli"],
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    let mut newest = None;
    for krate in own.iter().chain(&["core", "schemas", "cli"]) {
        walk(&root.join(krate).join("src"), &mut newest);
        walk(&root.join(krate).join("Cargo.toml"), &mut newest);
    }
    newest
}

impl Bins {
    fn dir_of_exe() -> Result<PathBuf> {
        let exe = std::env::current_exe()?;
        let mut dir = exe
            .parent()
            .ok_or_else(|| anyhow!("no executable directory"))?
            .to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        Ok(dir)
    }

    /// Finds the binaries next to the running executable (the tests' target directory). Never
    /// builds: `cargo test --workspace` builds them before any test runs. A binary that is
    /// missing, or older than the sources it is built from, is an error naming the command
    /// that builds it, so a test never runs yesterday's code.
    pub fn locate() -> Result<Bins> {
        let dir = Self::dir_of_exe()?;
        let release = dir.ends_with("release");
        let build = format!(
            "cargo build --workspace --bins{}",
            if release { " --release" } else { "" }
        );
        for b in BINARIES {
            let path = dir.join(b);
            let built = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .map_err(|_| anyhow!("{b} is not built in {} (run `{build}`)", dir.display()))?;
            if newest_source(b).is_some_and(|n| n > built) {
                bail!(
                    "{b} in {} is older than its sources (run `{build}`)",
                    dir.display()
                );
            }
        }
        Ok(Bins { dir })
    }

    /// Builds the binaries in the running executable's profile (the demo's `cargo run` builds
    /// only the journey itself), then locates them.
    pub fn build() -> Result<Bins> {
        let dir = Self::dir_of_exe()?;
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"]);
        // Each binary's package has the binary's name.
        for b in BINARIES {
            cmd.args(["-p", b]);
        }
        cmd.arg("--bins");
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().context("building the bizcred binaries")?;
        if !st.success() {
            bail!("building the bizcred binaries failed");
        }
        Bins::locate()
    }

    /// The directory of the binaries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command for binary `name`, with the demo passphrases in its environment.
    pub fn cmd(&self, name: &str) -> Command {
        let mut c = Command::new(self.dir.join(name));
        for v in PASSPHRASE_VARS {
            c.env(v, DEMO_PASSPHRASE);
        }
        c.env_remove("BIZCRED_WALLET_DIR")
            .env_remove("BIZCRED_REGISTRY_DIR")
            .env_remove("BIZCRED_VERIFIER_DIR")
            .env("NO_COLOR", "1");
        c
    }

    /// Runs `name args --json`; returns (exit code, last JSON line of stdout, stderr).
    pub fn run(&self, name: &str, args: &[&str]) -> Result<(i32, Value, String)> {
        self.run_at(name, args, 0)
    }

    /// Like [`Bins::run`], with the binary's clock `offset` seconds ahead
    /// (`BIZCRED_CLOCK_OFFSET_SECONDS`): tests let time pass without sleeping.
    pub fn run_at(&self, name: &str, args: &[&str], offset: i64) -> Result<(i32, Value, String)> {
        let out = self
            .cmd(name)
            .env("BIZCRED_CLOCK_OFFSET_SECONDS", offset.to_string())
            .arg("--json")
            .args(args)
            .output()
            .with_context(|| format!("running {name}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{') || l.trim_start().starts_with('['))
            .unwrap_or("null");
        let v = serde_json::from_str(last).unwrap_or(Value::Null);
        Ok((
            out.status.code().unwrap_or(-1),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Like [`Bins::run`], failing unless the exit code is 0.
    pub fn ok(&self, name: &str, args: &[&str]) -> Result<Value> {
        let (code, v, err) = self.run(name, args)?;
        if code != 0 {
            bail!("{name} {} exited {code}: {v} {err}", args.join(" "));
        }
        Ok(v)
    }
}

/// A running service; killed on drop.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl Service {
    /// Starts `name args` and waits for its `listening` line and its health check.
    pub fn start(bins: &Bins, name: &str, args: &[&str], url: &str) -> Result<Service> {
        let mut child = bins
            .cmd(name)
            .arg("--json")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim().is_empty() {
            let _ = child.kill();
            bail!("{name} did not start");
        }
        let svc = Service {
            child,
            url: url.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if reqwest::blocking::get(format!("{url}/healthz"))
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(svc);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{name} is not healthy at {url}")
    }

    /// Stops the service (SIGKILL, as dropping it does).
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Killing a process that already exited fails, and there is nothing else to do for it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One of the four agencies.
#[derive(Debug, Clone)]
pub struct AgencySpec {
    /// Short name.
    pub key: &'static str,
    /// English name.
    pub name_en: &'static str,
    /// French name.
    pub name_fr: &'static str,
    /// What it issues (and is authorized for).
    pub ty: CredentialType,
}

/// The four agencies of the mission.
pub fn agencies() -> [AgencySpec; 4] {
    [
        AgencySpec {
            key: "obr",
            name_en: "Ontario Business Registry",
            name_fr: "Registre des entreprises de l'Ontario",
            ty: CredentialType::CertificateOfIncorporation,
        },
        AgencySpec {
            key: "cra",
            name_en: "Canada Revenue Agency",
            name_fr: "Agence du revenu du Canada",
            ty: CredentialType::BusinessNumber,
        },
        AgencySpec {
            key: "city",
            name_en: "City of Toronto, Municipal Licensing and Standards",
            name_fr: "Ville de Toronto, Normes et permis municipaux",
            ty: CredentialType::MunicipalBusinessLicence,
        },
        AgencySpec {
            key: "agco",
            name_en: "Alcohol and Gaming Commission of Ontario",
            name_fr: "Commission des alcools et des jeux de l'Ontario",
            ty: CredentialType::LiquorSalesLicence,
        },
    ]
}

/// A running agency issuer.
#[derive(Debug)]
pub struct Agency {
    /// Who.
    pub spec: AgencySpec,
    /// Its DID.
    pub did: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its admin token.
    pub token: String,
    /// Its URL.
    pub url: String,
    /// The running service.
    pub service: Option<Service>,
}

/// The whole ecosystem on loopback.
#[derive(Debug)]
pub struct World {
    /// Binaries.
    pub bins: Bins,
    /// Temporary root.
    pub root: tempfile::TempDir,
    /// Registry data directory.
    pub registry_dir: PathBuf,
    /// Registry admin token.
    pub registry_token: String,
    /// Registry trust anchor (JSON).
    pub anchor: Value,
    /// Registry URL.
    pub registry_url: String,
    /// The running registry.
    pub registry: Option<Service>,
    /// The agencies.
    pub agencies: Vec<Agency>,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

impl World {
    /// Creates the registry and the four agencies (with `extra_types` issued by the City for
    /// negative tests), onboards them, and starts everything.
    pub fn start(extra_city_types: &[CredentialType]) -> Result<World> {
        World::start_with(extra_city_types, true)
    }

    /// Like [`World::start`]; with `prerequisites` false every agency issues without asking
    /// for other agencies' credentials (to receive into a wallet that only receives).
    pub fn start_with(extra_city_types: &[CredentialType], prerequisites: bool) -> Result<World> {
        let bins = Bins::locate()?;
        let root = tempfile::Builder::new()
            .prefix("bizcred-journey-")
            .tempdir()?;
        let registry_dir = root.path().join("registry");
        let init = bins.ok(
            "bizcred-registry",
            &[
                "init",
                "--origin",
                "registry.bizcred.localhost/log",
                "--data-dir",
                &registry_dir.to_string_lossy(),
            ],
        )?;
        let registry_token = init["admin_token"].as_str().unwrap_or_default().to_owned();
        let anchor = init["anchor"].clone();
        let rport = free_port()?;
        let registry_url = format!("http://localhost:{rport}");
        let registry = Service::start(
            &bins,
            "bizcred-registry",
            &[
                "serve",
                "--listen",
                &format!("127.0.0.1:{rport}"),
                "--data-dir",
                &registry_dir.to_string_lossy(),
            ],
            &registry_url,
        )?;
        let mut world = World {
            bins,
            root,
            registry_dir,
            registry_token,
            anchor,
            registry_url,
            registry: Some(registry),
            agencies: Vec::new(),
        };
        for spec in agencies() {
            let extra: &[CredentialType] = if spec.key == "city" {
                extra_city_types
            } else {
                &[]
            };
            let a = world.create_agency(spec, extra, prerequisites)?;
            world.agencies.push(a);
        }
        for i in 0..world.agencies.len() {
            world.start_agency(i)?;
        }
        Ok(world)
    }

    fn create_agency(
        &self,
        spec: AgencySpec,
        extra: &[CredentialType],
        prerequisites: bool,
    ) -> Result<Agency> {
        let dir = self.root.path().join(spec.key);
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let tok = self.bins.ok("bizcred-issuer", &["token"])?;
        let token = tok["token"].as_str().unwrap_or_default().to_owned();
        let mut types = vec![spec.ty];
        types.extend_from_slice(extra);
        let config = dir.join("agency.toml");
        // It follows the event feeds of the agencies whose credentials it asks for, to flag
        // what depended on one that was revoked or suspended.
        let upstream: Vec<String> = if prerequisites {
            self.agencies
                .iter()
                .filter(|a| spec.ty.prerequisites().contains(&a.spec.ty))
                .map(|a| a.url.clone())
                .collect()
        } else {
            Vec::new()
        };
        let toml = agency_config(
            spec.key,
            port,
            &dir.join("data"),
            &self.registry_url,
            &self.anchor,
            &types,
            prerequisites,
            tok["token_sha256"].as_str().unwrap_or_default(),
            &upstream,
        )?;
        write(&config, &toml)?;
        let init = self.bins.ok(
            "bizcred-issuer",
            &["init", "--config", &config.to_string_lossy()],
        )?;
        let did = init["did"].as_str().unwrap_or_default().to_owned();
        let log = init["did_log"].as_str().unwrap_or_default().to_owned();
        // The registry operator onboards the agency: its DID and its authorized type only.
        self.bins.ok(
            "bizcred-registry",
            &[
                "onboard",
                "--did-log",
                &log,
                "--name-en",
                spec.name_en,
                "--name-fr",
                spec.name_fr,
                "--type",
                spec.ty.slug(),
                "--url",
                &self.registry_url,
                &format!("--token={}", self.registry_token),
                "--data-dir",
                &self.registry_dir.to_string_lossy(),
            ],
        )?;
        Ok(Agency {
            spec,
            did,
            config,
            token,
            url: format!("http://localhost:{port}"),
            service: None,
        })
    }

    /// Starts (or restarts) agency `i`.
    pub fn start_agency(&mut self, i: usize) -> Result<()> {
        let a = &self.agencies[i];
        let svc = Service::start(
            &self.bins,
            "bizcred-issuer",
            &["serve", "--config", &a.config.to_string_lossy()],
            &a.url,
        )?;
        self.agencies[i].service = Some(svc);
        Ok(())
    }

    /// Stops every agency and the registry (the network the bank must not need).
    pub fn stop_network(&mut self) {
        for a in &mut self.agencies {
            if let Some(s) = a.service.take() {
                s.stop();
            }
        }
        if let Some(r) = self.registry.take() {
            r.stop();
        }
    }

    /// Restarts the registry and the agencies.
    pub fn start_network(&mut self) -> Result<()> {
        let port = self
            .registry_url
            .rsplit(':')
            .next()
            .unwrap_or("0")
            .to_owned();
        self.registry = Some(Service::start(
            &self.bins,
            "bizcred-registry",
            &[
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                &self.registry_dir.to_string_lossy(),
            ],
            &self.registry_url,
        )?);
        for i in 0..self.agencies.len() {
            self.start_agency(i)?;
        }
        Ok(())
    }

    /// An agency by key.
    pub fn agency(&self, key: &str) -> &Agency {
        self.agencies
            .iter()
            .find(|a| a.spec.key == key)
            .unwrap_or(&self.agencies[0])
    }

    /// Runs `bizcred-issuer admin <args>` against agency `key`.
    pub fn admin(&self, key: &str, args: &[&str]) -> Result<Value> {
        let a = self.agency(key);
        let token = format!("--token={}", a.token);
        let mut full = vec!["admin", "--url", a.url.as_str(), token.as_str()];
        full.extend_from_slice(args);
        self.bins.ok("bizcred-issuer", &full)
    }

    /// Staff at agency `key` open an application for `ty` with `claims` and approve it at
    /// once; returns the offer (`credential_offer_uri`, `tx_code`, ...). `name` names the
    /// claims file.
    pub fn offer(
        &self,
        key: &str,
        ty: CredentialType,
        name: &str,
        claims: &Value,
    ) -> Result<Value> {
        let file = self.claims_file(name, claims)?;
        let app = self.admin(
            key,
            &[
                "apply",
                "--type",
                ty.slug(),
                "--claims",
                &file.to_string_lossy(),
            ],
        )?;
        let id = app["application_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no application id: {app}"))?;
        self.admin(key, &["approve", id])
    }

    /// Creates a desk account `name` with `role` at agency `key` (`bizcred-issuer staff add`,
    /// the password from a file in the world's directory).
    pub fn add_staff(&self, key: &str, name: &str, role: &str, password: &str) -> Result<Value> {
        let file = self.root.path().join(format!("{key}-{name}.password"));
        write(&file, password)?;
        let a = self.agency(key);
        self.bins.ok(
            "bizcred-issuer",
            &[
                "staff",
                "--config",
                &a.config.to_string_lossy(),
                "add",
                name,
                "--role",
                role,
                "--password-file",
                &file.to_string_lossy(),
            ],
        )
    }

    /// Creates the staff accounts `clerk`, `approver` and `admin` at every agency desk, sharing
    /// one random password (answered).
    pub fn desk_accounts(&self) -> Result<String> {
        use rand_core::RngCore;
        let mut b = [0u8; 9];
        rand_core::OsRng.fill_bytes(&mut b);
        let password: String = b.iter().map(|x| format!("{x:02x}")).collect();
        for a in &self.agencies {
            for (name, role) in [
                ("clerk", "clerk"),
                ("approver", "approver"),
                ("admin", "administrator"),
            ] {
                self.add_staff(a.spec.key, name, role, &password)?;
            }
        }
        Ok(password)
    }

    /// Writes `claims` to a file for `admin apply/approve`.
    pub fn claims_file(&self, name: &str, claims: &Value) -> Result<PathBuf> {
        let p = self.root.path().join(format!("{name}.json"));
        write(&p, &claims.to_string())?;
        Ok(p)
    }
}

/// A business owner's wallet.
#[derive(Debug)]
pub struct Wallet {
    /// Its directory.
    pub dir: PathBuf,
}

impl Wallet {
    /// Creates a wallet under `root`.
    pub fn create(bins: &Bins, root: &Path, name: &str) -> Result<Wallet> {
        let dir = root.join(name);
        bins.ok(
            "bizcred-wallet",
            &["--wallet-dir", &dir.to_string_lossy(), "init"],
        )?;
        Ok(Wallet { dir })
    }

    /// Runs a wallet command; returns (exit code, JSON, stderr).
    pub fn run(&self, bins: &Bins, args: &[&str]) -> Result<(i32, Value, String)> {
        let mut full = vec!["--wallet-dir", self.dir.to_str().unwrap_or("")];
        full.extend_from_slice(args);
        bins.run("bizcred-wallet", &full)
    }

    /// Like `run`, failing unless the exit code is 0.
    pub fn ok(&self, bins: &Bins, args: &[&str]) -> Result<Value> {
        let (code, v, err) = self.run(bins, args)?;
        if code != 0 {
            bail!("bizcred-wallet {} exited {code}: {v} {err}", args.join(" "));
        }
        Ok(v)
    }

    /// Answers the request file `request` into the presentation file `out`, consenting.
    pub fn present_file(&self, bins: &Bins, request: &Path, out: &Path) -> Result<Value> {
        self.ok(
            bins,
            &[
                "present",
                "--request",
                &request.to_string_lossy(),
                "--out",
                &out.to_string_lossy(),
                "--yes",
            ],
        )
    }

    /// Receives the credential of `offer` (as `World::offer` or `admin approve` return it)
    /// with its transaction code.
    pub fn receive(&self, bins: &Bins, offer: &Value) -> Result<Value> {
        let field = |k: &str| {
            offer[k]
                .as_str()
                .ok_or_else(|| anyhow!("the offer has no {k}: {offer}"))
        };
        self.ok(
            bins,
            &[
                "receive",
                field("credential_offer_uri")?,
                "--tx-code",
                field("tx_code")?,
            ],
        )
    }
}

/// Today ± days, as `YYYY-MM-DD`.
pub fn date(days_from_today: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    bizcred_core::time::format_utc(now + days_from_today * 86_400)[..10].to_owned()
}

/// The example claim set of a type (Jennifer Ventures Inc.).
pub fn example_claims(ty: CredentialType) -> Value {
    Value::Object(example(ty))
}

fn example(ty: CredentialType) -> Map<String, Value> {
    bizcred_test_support::example_claims(ty)
}

/// A business to take through the journey (Jennifer Ventures Inc. by default).
#[derive(Debug, Clone)]
pub struct Business {
    /// Legal name.
    pub legal_name: String,
    /// Ontario corporation number.
    pub corporation_number: String,
    /// BN9 the CRA assigns.
    pub business_number: String,
    /// Municipal licence number.
    pub municipal_licence: String,
    /// Liquor licence number.
    pub liquor_licence: String,
}

impl Business {
    /// Jennifer Ventures Inc., the restaurant of the mission.
    pub fn jennifer() -> Business {
        Business {
            legal_name: "Jennifer Ventures Inc.".into(),
            corporation_number: "5012345".into(),
            business_number: "812345676".into(),
            municipal_licence: "B02-4471920".into(),
            liquor_licence: "LSL-826104".into(),
        }
    }

    /// Another restaurant, for mixed-business tests.
    pub fn other() -> Business {
        Business {
            legal_name: "Queen West Bistro Ltd.".into(),
            corporation_number: "5098765".into(),
            business_number: "123456782".into(),
            municipal_licence: "B02-5550001".into(),
            liquor_licence: "LSL-900001".into(),
        }
    }

    /// What the Business Registry's system of record holds (no business number yet).
    pub fn incorporation(&self) -> Value {
        let mut c = example(CredentialType::CertificateOfIncorporation);
        c.insert("legal_name".into(), self.legal_name.clone().into());
        c.insert(
            "corporation_number".into(),
            self.corporation_number.clone().into(),
        );
        c.insert("incorporation_date".into(), date(-120).into());
        Value::Object(c)
    }

    /// What the CRA adds to the pre-filled application.
    pub fn business_number_claims(&self) -> Value {
        let bn = &self.business_number;
        json!({
            "business_number": bn,
            "operating_name": "Jennifer's Kitchen",
            "program_accounts": [
                {"program": "RT", "reference": "0001", "account_number": format!("{bn}RT0001"), "effective_date": date(-100)},
                {"program": "RP", "reference": "0001", "account_number": format!("{bn}RP0001"), "effective_date": date(-100)}
            ],
            "registration_date": date(-100),
        })
    }

    /// What the City adds after the zoning review.
    pub fn municipal_claims(&self) -> Value {
        let mut c = example(CredentialType::MunicipalBusinessLicence);
        for k in [
            "licensee_legal_name",
            "operating_name",
            "business_number",
            "corporation_number",
        ] {
            c.remove(k);
        }
        c.insert(
            "licence_number".into(),
            self.municipal_licence.clone().into(),
        );
        c.insert("issue_date".into(), date(-60).into());
        c.insert("expiry_date".into(), date(300).into());
        Value::Object(c)
    }

    /// What the AGCO adds.
    pub fn liquor_claims(&self, issue_days: i64, expiry_days: i64) -> Value {
        let mut c = example(CredentialType::LiquorSalesLicence);
        for k in [
            "licensee_legal_name",
            "operating_name",
            "business_number",
            "premises_address",
            "municipal_licence_number",
        ] {
            c.remove(k);
        }
        c.insert("licence_number".into(), self.liquor_licence.clone().into());
        c.insert("issue_date".into(), date(issue_days).into());
        c.insert("expiry_date".into(), date(expiry_days).into());
        Value::Object(c)
    }
}

/// Steps of an application at one agency: open (presenting prerequisites if asked), approve
/// with the staff's claims, receive into the wallet. Returns the received credential's record.
pub fn obtain(
    world: &World,
    wallet: &Wallet,
    agency: &str,
    ty: CredentialType,
    apply_claims: Option<&Value>,
    approve_claims: &Value,
) -> Result<Value> {
    let bins = &world.bins;
    let mut apply = vec![
        "apply".to_owned(),
        "--type".to_owned(),
        ty.slug().to_owned(),
    ];
    if let Some(c) = apply_claims {
        apply.push("--claims".into());
        apply.push(
            world
                .claims_file(&format!("{agency}-apply"), c)?
                .to_string_lossy()
                .into_owned(),
        );
    }
    let apply_refs: Vec<&str> = apply.iter().map(String::as_str).collect();
    let app = world.admin(agency, &apply_refs)?;
    let app_id = app["application_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no application id: {app}"))?
        .to_owned();
    let mut presented = Value::Null;
    if let Some(uri) = app["presentation_request"].as_str() {
        presented = wallet.ok(bins, &["present", uri, "--yes"])?;
        if presented["answer"]["verdict"] != "ACCEPT" {
            bail!(
                "{agency} refused the prerequisite presentation: {}",
                presented["answer"]
            );
        }
    }
    let approve_file = world.claims_file(&format!("{agency}-approve"), approve_claims)?;
    let offer = world.admin(
        agency,
        &[
            "approve",
            &app_id,
            "--claims",
            &approve_file.to_string_lossy(),
        ],
    )?;
    let received = wallet.receive(bins, &offer)?;
    Ok(
        json!({"agency": agency, "application_id": app_id, "presented": presented, "received": received}),
    )
}

/// The agency's `agency.toml`: the commented sample in `examples/config/{key}.toml` (so the
/// samples cannot rot), with this world's ports, paths, registry anchor and admin token hash,
/// a short re-signing interval, `types`, and the prerequisites switched off when asked.
#[allow(clippy::too_many_arguments)]
pub fn agency_config(
    key: &str,
    port: u16,
    data: &Path,
    registry_url: &str,
    anchor: &Value,
    types: &[CredentialType],
    prerequisites: bool,
    token_sha256: &str,
    subscriptions: &[String],
) -> Result<String> {
    let sample = match key {
        "obr" => include_str!("../config/obr.toml"),
        "cra" => include_str!("../config/cra.toml"),
        "city" => include_str!("../config/city.toml"),
        "agco" => include_str!("../config/agco.toml"),
        other => bail!("no sample configuration for agency {other}"),
    };
    let mut t: toml::Table =
        toml::from_str(sample).with_context(|| format!("examples/config/{key}.toml"))?;
    let table = |t: &mut toml::Table, name: &str| -> Result<toml::Table> {
        match t.remove(name) {
            Some(toml::Value::Table(x)) => Ok(x),
            _ => bail!("examples/config/{key}.toml has no [{name}]"),
        }
    };
    let s = |v: &str| toml::Value::String(v.to_owned());
    let mut server = table(&mut t, "server")?;
    server.insert("public_url".into(), s(&format!("http://localhost:{port}")));
    server.insert("listen".into(), s(&format!("127.0.0.1:{port}")));
    t.insert("server".into(), server.into());
    let mut storage = table(&mut t, "storage")?;
    storage.insert("path".into(), s(&data.to_string_lossy()));
    t.insert("storage".into(), storage.into());
    let mut registry = table(&mut t, "registry")?;
    registry.insert("url".into(), s(registry_url));
    for k in ["origin", "log_key_name", "log_key"] {
        let v = anchor[k]
            .as_str()
            .ok_or_else(|| anyhow!("the registry anchor has no {k}: {anchor}"))?;
        registry.insert(k.into(), s(v));
    }
    t.insert("registry".into(), registry.into());
    let mut issuance = table(&mut t, "issuance")?;
    issuance.insert(
        "types".into(),
        toml::Value::Array(types.iter().map(|ty| s(ty.slug())).collect()),
    );
    if !prerequisites {
        let none: toml::Table = types
            .iter()
            .map(|ty| (ty.slug().to_owned(), toml::Value::Array(Vec::new())))
            .collect();
        issuance.insert("prerequisites".into(), none.into());
    }
    t.insert("issuance".into(), issuance.into());
    let mut status = table(&mut t, "status")?;
    status.insert("list_size".into(), toml::Value::Integer(4096));
    status.insert("resign_interval_seconds".into(), toml::Value::Integer(5));
    t.insert("status".into(), status.into());
    let mut admin = table(&mut t, "admin")?;
    admin.insert(
        "token_sha256".into(),
        toml::Value::Array(vec![s(token_sha256)]),
    );
    t.insert("admin".into(), admin.into());
    if !subscriptions.is_empty() {
        let subs = subscriptions
            .iter()
            .map(|url| toml::Value::Table(toml::Table::from_iter([("url".to_owned(), s(url))])))
            .collect();
        t.insert("subscription".into(), toml::Value::Array(subs));
    }
    Ok(toml::to_string(&t)?)
}

/// Bytes of the files under `dir` (a store's size on disk, for the benches). A file removed
/// while it is walked (sled drops old segments) counts as nothing; any other error is returned.
pub fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    let skip_gone = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Ok(0)
        } else {
            Err(e)
        }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return skip_gone(e),
    };
    let mut total = 0;
    for e in entries {
        let e = e?;
        total += match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path())?,
            Ok(m) => m.len(),
            Err(err) => skip_gone(err)?,
        };
    }
    Ok(total)
}

/// The bank's verifier.
#[derive(Debug)]
pub struct Bank {
    /// Data directory.
    pub dir: PathBuf,
    /// The running service.
    pub service: Service,
    /// The policy file.
    pub policy: PathBuf,
    /// The operator token (creates requests, reads results).
    pub token: String,
}

impl Bank {
    /// Creates the bank's verifier with `policy` (TOML text) and starts its OpenID4VP service.
    pub fn start(world: &World, policy: &str) -> Result<Bank> {
        Bank::start_named(world, "bank", policy)
    }

    /// Like [`Bank::start`], for a second verifier named `name`.
    pub fn start_named(world: &World, name: &str, policy: &str) -> Result<Bank> {
        let dir = world.root.path().join(name);
        let policy_file = world.root.path().join(format!("{name}-policy.toml"));
        write(&policy_file, policy)?;
        let bins = &world.bins;
        let d = dir.to_string_lossy().into_owned();
        let made = bins.ok(
            "bizcred-verifier",
            &[
                "--data-dir",
                &d,
                "init",
                "--anchor",
                &world.anchor.to_string(),
                "--registry",
                &world.registry_url,
            ],
        )?;
        let token = made["operator_token"]
            .as_str()
            .ok_or_else(|| anyhow!("init printed no operator token: {made}"))?
            .to_owned();
        let port = free_port()?;
        let url = format!("http://localhost:{port}");
        let service = Service::start(
            bins,
            "bizcred-verifier",
            &[
                "--data-dir",
                &d,
                "serve",
                "--policy",
                &policy_file.to_string_lossy(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--public-url",
                &url,
            ],
            &url,
        )?;
        Ok(Bank {
            dir,
            service,
            policy: policy_file,
            token,
        })
    }

    /// Creates a desk account `name` with `role` (`officer` or `administrator`) at the bank.
    pub fn add_staff(
        &self,
        world: &World,
        name: &str,
        role: &str,
        password: &str,
    ) -> Result<Value> {
        let file = world.root.path().join(format!("bank-{name}.password"));
        write(&file, password)?;
        world.bins.ok(
            "bizcred-verifier",
            &[
                "--data-dir",
                &self.dir.to_string_lossy(),
                "staff",
                "add",
                name,
                "--role",
                role,
                "--password-file",
                &file.to_string_lossy(),
            ],
        )
    }

    /// Syncs the trust bundle from the registry.
    pub fn sync(&self, world: &World) -> Result<Value> {
        world.bins.ok(
            "bizcred-verifier",
            &["--data-dir", &self.dir.to_string_lossy(), "sync"],
        )
    }

    /// Writes an OpenID4VP request for the bank's policy to `out` (for a wallet offline).
    pub fn request_file(&self, bins: &Bins, out: &Path) -> Result<Value> {
        bins.ok(
            "bizcred-verifier",
            &[
                "--data-dir",
                &self.dir.to_string_lossy(),
                "request",
                "--policy",
                &self.policy.to_string_lossy(),
                "--out",
                &out.to_string_lossy(),
            ],
        )
    }

    /// Verifies a presentation file (from `bizcred-wallet present --out`) offline with the
    /// bank's policy; returns the exit code and the report.
    pub fn verify_file(&self, bins: &Bins, file: &Path) -> Result<(i32, Value)> {
        self.verify_file_at(bins, file, 0)
    }

    /// Like [`Bank::verify_file`], with the verifier's clock `offset` seconds ahead.
    pub fn verify_file_at(&self, bins: &Bins, file: &Path, offset: i64) -> Result<(i32, Value)> {
        let (code, v, _) = bins.run_at(
            "bizcred-verifier",
            &[
                "--data-dir",
                &self.dir.to_string_lossy(),
                "verify",
                &file.to_string_lossy(),
                "--policy",
                &self.policy.to_string_lossy(),
            ],
            offset,
        )?;
        Ok((code, v["report"].clone()))
    }

    /// Opens an OpenID4VP request at the bank's service (as its staff would, with the
    /// operator token): `{transaction_id, request_uri, policy, expires_at}`.
    pub fn new_request(&self) -> Result<Value> {
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/requests", self.service.url))
            .bearer_auth(&self.token)
            .send()?;
        let status = resp.status();
        let v: Value = resp.json()?;
        if status.as_u16() != 201 {
            bail!("POST /requests answered {status}: {v}");
        }
        Ok(v)
    }

    /// The bank's result for transaction `tx`: the HTTP status and the body.
    pub fn transaction(&self, tx: &str) -> Result<(u16, Value)> {
        let resp = reqwest::blocking::Client::new()
            .get(format!("{}/transactions/{tx}", self.service.url))
            .bearer_auth(&self.token)
            .send()?;
        let status = resp.status().as_u16();
        Ok((status, resp.json()?))
    }

    /// Asks the wallet for a presentation and returns the bank's report and receipt.
    pub fn ask(&self, world: &World, wallet: &Wallet) -> Result<Value> {
        let req = self.new_request()?;
        let uri = req["request_uri"]
            .as_str()
            .ok_or_else(|| anyhow!("no request: {req}"))?;
        let (_code, answer, _err) = wallet.run(&world.bins, &["present", uri, "--yes"])?;
        let tx = req["transaction_id"]
            .as_str()
            .ok_or_else(|| anyhow!("no transaction id: {req}"))?;
        let (_, result) = self.transaction(tx)?;
        Ok(json!({"wallet": answer, "report": result["report"], "receipt": result["receipt"]}))
    }
}

fn verdict(r: &Value) -> String {
    r["report"]["verdict"].as_str().unwrap_or("?").to_owned()
}

fn failures(r: &Value) -> Vec<String> {
    r["report"]["failures"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the whole journey; `out` receives one readable line and the full record per step.
pub fn restaurant_journey(out: &mut dyn FnMut(&str, Value)) -> Result<()> {
    let mut world = World::start(&[])?;
    out(
        &format!(
            "the registry and four agencies are running on loopback (registry {})",
            world.registry_url
        ),
        json!({"registry": world.registry_url, "agencies": world.agencies.iter().map(|a| json!({"name": a.spec.name_en, "did": a.did, "url": a.url})).collect::<Vec<_>>()}),
    );
    let biz = Business::jennifer();
    let wallet = Wallet::create(&world.bins, world.root.path(), "jennifer-wallet")?;

    let r = obtain(
        &world,
        &wallet,
        "obr",
        CredentialType::CertificateOfIncorporation,
        Some(&biz.incorporation()),
        &json!({}),
    )?;
    out("Ontario Business Registry staff approved the incorporation; Jennifer's wallet received the certificate of incorporation", r);
    let r = obtain(
        &world,
        &wallet,
        "cra",
        CredentialType::BusinessNumber,
        None,
        &biz.business_number_claims(),
    )?;
    out("the CRA verified Jennifer's certificate of incorporation, pre-filled the application from it, and issued business number 812345676", r);
    let r = obtain(
        &world,
        &wallet,
        "city",
        CredentialType::MunicipalBusinessLicence,
        None,
        &biz.municipal_claims(),
    )?;
    out("the City of Toronto verified incorporation and business number, and issued the eating-establishment licence", r);
    let r = obtain(
        &world,
        &wallet,
        "agco",
        CredentialType::LiquorSalesLicence,
        None,
        &biz.liquor_claims(-30, 700),
    )?;
    out("the AGCO verified incorporation, business number and the municipal licence for the same premises, and issued the liquor sales licence", r);

    let bank = Bank::start(
        &world,
        include_str!("../../examples/config/policies/loan-application.toml"),
    )?;
    let synced = bank.sync(&world)?;
    world.stop_network();
    let r = bank.ask(&world, &wallet)?;
    if verdict(&r) != "ACCEPT" {
        bail!(
            "the bank did not accept the loan application: {:?}",
            failures(&r)
        );
    }
    out(
        &format!(
            "the bank synced its trust bundle ({} entries), went offline from every issuer and the registry, and ACCEPTED the loan application; signed receipt for {}",
            synced["size"],
            r["receipt"]["presentation_sha256"].as_str().unwrap_or("").get(..16).unwrap_or("")
        ),
        r,
    );

    world.start_network()?;
    let creds = world.admin("agco", &["list"])?;
    let liquor_id = creds
        .as_array()
        .and_then(|a| a.first())
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    world.admin(
        "agco",
        &[
            "suspend",
            &liquor_id,
            "--reason",
            "premises inspection pending",
        ],
    )?;
    bank.sync(&world)?;
    let r = bank.ask(&world, &wallet)?;
    if verdict(&r) != "REJECT" || !failures(&r).contains(&"SUSPENDED".to_owned()) {
        bail!("after the suspension the bank should reject as SUSPENDED: {} {:?} as_of {} suspended {}", verdict(&r), failures(&r), r["report"]["as_of"], liquor_id);
    }
    out("the AGCO suspended the liquor licence; after its next sync the bank REJECTED the same application as SUSPENDED", r);

    world.admin(
        "agco",
        &["reinstate", &liquor_id, "--reason", "inspection passed"],
    )?;
    let rotated = world.admin("city", &["rotate-key"])?;
    bank.sync(&world)?;
    let r = bank.ask(&world, &wallet)?;
    if verdict(&r) != "ACCEPT" {
        bail!(
            "after the City's key rotation the bank should still accept: {}",
            r["report"]["failures"]
        );
    }
    out(
        &format!("the AGCO reinstated the licence; the City rotated its signing key to {}; the municipal licence signed before the rotation is still ACCEPTED", rotated["kid"].as_str().unwrap_or("")),
        json!({"rotation": rotated, "result": r}),
    );
    Ok(())
}

/// The business obtains its certificate of incorporation, business number and municipal
/// licence, then applies for its liquor licence at the AGCO and presents the prerequisites:
/// the application waits for the AGCO's staff.
pub fn awaiting_liquor_licence(world: &World, wallet: &Wallet, biz: &Business) -> Result<()> {
    obtain(
        world,
        wallet,
        "obr",
        CredentialType::CertificateOfIncorporation,
        Some(&biz.incorporation()),
        &json!({}),
    )?;
    obtain(
        world,
        wallet,
        "cra",
        CredentialType::BusinessNumber,
        None,
        &biz.business_number_claims(),
    )?;
    obtain(
        world,
        wallet,
        "city",
        CredentialType::MunicipalBusinessLicence,
        None,
        &biz.municipal_claims(),
    )?;
    let app = world.admin("agco", &["apply", "--type", "liquor-sales-licence"])?;
    let uri = app["presentation_request"]
        .as_str()
        .ok_or_else(|| anyhow!("no prerequisite request: {app}"))?;
    let presented = wallet.ok(&world.bins, &["present", uri, "--yes"])?;
    if presented["answer"]["verdict"] != "ACCEPT" {
        bail!("the AGCO refused the prerequisites: {presented}");
    }
    Ok(())
}

/// The parties of [`desk_demo`], kept running while it is alive.
#[derive(Debug)]
pub struct DeskDemo {
    /// The registry and the agencies.
    pub world: World,
    /// The bank.
    pub bank: Bank,
    /// The founder's wallet.
    pub wallet: Wallet,
}

/// The journey for people at a browser: the business obtains its incorporation, business
/// number and municipal licence; its liquor-licence application waits at the AGCO with the
/// prerequisites presented; every agency and the bank get staff accounts sharing one random
/// password. `out` receives what to open and type.
pub fn desk_demo(out: &mut dyn FnMut(&str)) -> Result<DeskDemo> {
    let world = World::start(&[])?;
    let biz = Business::jennifer();
    let wallet = Wallet::create(&world.bins, world.root.path(), "jennifer-wallet")?;
    awaiting_liquor_licence(&world, &wallet, &biz)?;
    let password = world.desk_accounts()?;
    let bank = Bank::start(
        &world,
        include_str!("../../examples/config/policies/loan-application.toml"),
    )?;
    bank.sync(&world)?;
    for (name, role) in [("officer", "officer"), ("admin", "administrator")] {
        bank.add_staff(&world, name, role, &password)?;
    }
    out("The registry, four agencies and the bank are running on loopback.");
    out("");
    for a in &world.agencies {
        out(&format!("  {:<52} {}/desk", a.spec.name_en, a.url));
    }
    out(&format!("  {:<52} {}/desk", "Bank", bank.service.url));
    out("");
    out(&format!(
        "Accounts at every agency: clerk, approver, admin; at the bank: officer, admin. Password: {password}"
    ));
    out("Jennifer Ventures Inc.'s liquor-licence application is ready for review at the AGCO.");
    use bizcred_cli::shell_quote;
    let w = shell_quote(&wallet.dir.to_string_lossy());
    let wallet_bin = shell_quote(&world.bins.dir().join("bizcred-wallet").to_string_lossy());
    out("After approving it, receive the credential with the link and code the page shows:");
    out(&format!(
        "  BIZCRED_WALLET_PASSPHRASE={} {wallet_bin} --wallet-dir {w} receive '<offer link>' --tx-code <code>",
        shell_quote(DEMO_PASSPHRASE)
    ));
    out("At the bank, start a verification and answer its request with:");
    out(&format!(
        "  BIZCRED_WALLET_PASSPHRASE={} {wallet_bin} --wallet-dir {w} present '<openid4vp:// link>'",
        shell_quote(DEMO_PASSPHRASE)
    ));
    Ok(DeskDemo {
        world,
        bank,
        wallet,
    })
}
