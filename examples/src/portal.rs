//! The founder's single window (`--portal`, issue #14): the registry and the four agencies
//! (each following the event feeds of the agencies whose credentials it asks for), staff
//! accounts at every agency desk, an empty wallet for Jennifer, and `bizcred-portal` reading
//! the registry's trust bundle. Jennifer starts every application from the portal; the agencies'
//! staff act at their desks; the tracker follows.

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::{free_port, Service, Wallet, World, DEMO_PASSPHRASE};

/// The parties of [`portal_demo`], kept running while it is alive.
#[derive(Debug)]
pub struct PortalDemo {
    /// The registry and the agencies.
    pub world: World,
    /// Jennifer's wallet (empty).
    pub wallet: Wallet,
    /// The running portal.
    pub portal: Service,
    /// The password of every staff account (`clerk`, `approver`, `admin` at each agency).
    pub password: String,
}

impl PortalDemo {
    /// The portal's address.
    pub fn url(&self) -> &str {
        &self.portal.url
    }

    /// The agency `key` (`obr`, `cra`, `city`, `agco`).
    pub fn agency(&self, key: &str) -> Result<&crate::Agency> {
        self.world
            .agencies
            .iter()
            .find(|a| a.spec.key == key)
            .ok_or_else(|| anyhow!("no agency {key}"))
    }

    /// The wallet command line for `args` (printed for a person to paste).
    pub fn wallet_command(&self, args: &str) -> String {
        use bizcred_cli::shell_quote;
        format!(
            "BIZCRED_WALLET_PASSPHRASE={} {} --wallet-dir {} {args}",
            shell_quote(DEMO_PASSPHRASE),
            shell_quote(
                &self
                    .world
                    .bins
                    .dir()
                    .join("bizcred-wallet")
                    .to_string_lossy()
            ),
            shell_quote(&self.wallet.dir.to_string_lossy())
        )
    }

    /// Approves application `id` at agency `key` with the staff's `claims` (the admin API, as
    /// a clerk's approval at the desk does); answers the offer.
    pub fn approve(&self, key: &str, id: &str, claims: &Value) -> Result<Value> {
        let file = self
            .world
            .claims_file(&format!("{key}-{id}-approve"), claims)?;
        self.world
            .admin(key, &["approve", id, "--claims", &file.to_string_lossy()])
    }
}

/// Starts the registry, the agencies with desk accounts, an empty wallet and the portal;
/// `out` receives what to open and type.
pub fn portal_demo(out: &mut dyn FnMut(&str)) -> Result<PortalDemo> {
    let world = World::start(&[])?;
    let wallet = Wallet::create(&world.bins, world.root.path(), "jennifer-wallet")?;
    let password = world.desk_accounts()?;
    let dir = world.root.path().join("portal");
    let d = dir.to_string_lossy().into_owned();
    world.bins.ok(
        "bizcred-portal",
        &[
            "--data",
            &d,
            "init",
            "--anchor",
            &world.anchor.to_string(),
            "--registry",
            &world.registry_url,
        ],
    )?;
    world.bins.ok("bizcred-portal", &["--data", &d, "sync"])?;
    let port = free_port()?;
    let url = format!("http://localhost:{port}");
    let portal = Service::start(
        &world.bins,
        "bizcred-portal",
        &[
            "--data",
            &d,
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--interval",
            "5",
        ],
        &url,
    )?;
    let demo = PortalDemo {
        world,
        wallet,
        portal,
        password,
    };
    out(
        "The registry and four agencies are running on loopback, with the founder's single window:",
    );
    out("");
    out(&format!(
        "  {:<52} {}",
        "Single window (Jennifer)",
        demo.url()
    ));
    for a in &demo.world.agencies {
        out(&format!("  {:<52} {}/desk", a.spec.name_en, a.url));
    }
    out("");
    out(&format!(
        "Accounts at every agency desk: clerk, approver, admin. Password: {}",
        demo.password
    ));
    out("Start at the single window: apply for incorporation, then follow the tracker.");
    out("Answer an agency's request for your credentials with the link the portal shows:");
    out(&format!(
        "  {}",
        demo.wallet_command("present '<openid4vp:// link>'")
    ));
    out("Receive a credential with the offer link and code the tracker shows:");
    out(&format!(
        "  {}",
        demo.wallet_command("receive '<offer link>' --tx-code <code>")
    ));
    Ok(demo)
}
