//! The staff desks in a real browser (headless Chromium over WebDriver), against the real
//! binaries on loopback: AGCO staff work a liquor-licence application whose prerequisites the
//! founder's wallet presented (a clerk reviews and is refused an approver's action, an approver
//! approves in French), the wallet receives the offer shown on the page, a bank officer verifies
//! the loan application (ACCEPT), the approver suspends the licence with a reason, the officer
//! syncs and verifies again (REJECT, SUSPENDED on the page). Refusals on the way: a wrong
//! password, a form without its CSRF token, a clerk approving, a session that has ended, another
//! service's session cookie. Every page is checked with axe-core (WCAG 2.1 AA) and screenshotted
//! in English and French (target/desk-screenshots, not committed).
//!
//! Without Chromium, chromedriver or axe-core the test says so loudly and passes; under
//! `CI=true` their absence fails it.

use anyhow::{anyhow, bail, Context, Result};
use bizcred_browser_test::{Browser, Lang, Page};
use bizcred_examples::{awaiting_liquor_licence, Bank, Business, Wallet, World};
use serde_json::{json, Value};

const PW: &str = "a long desk password";

/// Screenshot and accessibility check of the page the session is on.
async fn check(page: &Page, name: &str) -> Result<()> {
    page.screenshot(name).await?;
    page.assert_accessible(name).await?;
    Ok(())
}

async fn sign_in(page: &Page, base: &str, name: &str) -> Result<()> {
    page.goto(&format!("{base}/desk")).await?;
    let (account, password, submit, sign_out) = match page.lang() {
        Lang::En => ("Account name", "Password", "Sign in", "Sign out"),
        Lang::Fr => (
            "Nom du compte",
            "Mot de passe",
            "Ouvrir la session",
            "Se déconnecter",
        ),
    };
    page.fill(account, name).await?;
    page.fill(password, PW).await?;
    page.click_button(submit).await?;
    // Signed in once the page offers to sign out: the sign-in page's own address has /desk
    // in it too, and the password hash takes its time on a loaded machine.
    page.wait_for_text(sign_out).await?;
    Ok(())
}

/// The `href` of the first element matching `css`.
async fn href(page: &Page, css: &str) -> Result<String> {
    let v = page
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute('href') : null;",
            vec![json!(css)],
        )
        .await?;
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no {css} on the page"))
}

/// Runs blocking harness work (processes, blocking HTTP) from the async test body.
fn blocking<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    tokio::task::block_in_place(f)
}

#[test]
fn staff_work_the_desks_in_a_browser() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(journey())
}

async fn journey() -> Result<()> {
    let Some(browser) = Browser::start().await? else {
        return Ok(());
    };
    let world = blocking(|| World::start(&[]))?;
    let bins = &world.bins;
    let biz = Business::jennifer();
    let wallet = blocking(|| Wallet::create(bins, world.root.path(), "jennifer-wallet"))?;
    blocking(|| {
        for (name, role) in [
            ("clara", "clerk"),
            ("alain", "approver"),
            ("ada", "administrator"),
        ] {
            world.add_staff("agco", name, role, PW)?;
        }
        awaiting_liquor_licence(&world, &wallet, &biz)
    })?;
    let agco = world.agency("agco").url.clone();

    // The clerk: a wrong password first, then the queue, the application, its claims.
    let clerk = browser.session(Lang::En).await?;
    clerk.goto(&format!("{agco}/desk")).await?;
    clerk.wait_for_text("Sign in").await?;
    check(&clerk, "issuer-login").await?;
    clerk.fill("Account name", "clara").await?;
    clerk.fill("Password", "not the password at all").await?;
    clerk.click_button("Sign in").await?;
    clerk.wait_for_text("password is wrong").await?;
    sign_in(&clerk, &agco, "clara").await?;
    clerk.wait_for_text("Ready for review").await?;
    check(&clerk, "issuer-queue").await?;
    let app_path = href(&clerk, "a.open-application").await?;
    clerk.goto(&format!("{agco}{app_path}")).await?;
    clerk.wait_for_text("Verified claims").await?;
    let verified = clerk.text_of("#verified-claims").await?;
    for held in ["Jennifer Ventures Inc.", "812345676", "B02-4471920"] {
        if !verified.contains(held) {
            bail!("the verified claims do not show {held}: {verified}");
        }
    }
    check(&clerk, "issuer-application").await?;
    let licence = biz.liquor_claims(-30, 700);
    clerk.fill("Licence number", &biz.liquor_licence).await?;
    clerk
        .select(
            "Licence class",
            licence["licence_class"].as_str().unwrap_or(""),
        )
        .await?;
    clerk
        .fill("Endorsements", &licence["endorsements"].to_string())
        .await?;
    clerk
        .fill("Capacity", &licence["capacity"].to_string())
        .await?;
    clerk
        .fill("Issue date", licence["issue_date"].as_str().unwrap_or(""))
        .await?;
    clerk.fill("Expiry date", "2027-02-30").await?;
    clerk.click_button("Save claims").await?;
    clerk
        .wait_for_text("There is a problem with these claims")
        .await?;
    let field = clerk.text_of("#field-expiry_date").await?;
    if !field.contains("Error") {
        bail!("the expiry date's error is not next to its field: {field}");
    }
    check(&clerk, "issuer-application-errors").await?;
    clerk
        .set_value("Expiry date", licence["expiry_date"].as_str().unwrap_or(""))
        .await?;
    clerk.click_button("Save claims").await?;
    clerk.wait_for_text("The claims were saved.").await?;

    // A form posted without its CSRF token, then a clerk posting an approval: both refused.
    clerk
        .execute(
            "const f = document.getElementById('claims-form'); f.querySelector('input[name=csrf]').remove(); f.submit();",
            vec![],
        )
        .await?;
    clerk.wait_for_text("CSRF_REJECTED").await?;
    check(&clerk, "issuer-refused").await?;
    clerk.goto(&format!("{agco}{app_path}")).await?;
    clerk
        .execute(
            "const f = document.getElementById('claims-form'); const op = document.createElement('input'); op.type = 'hidden'; op.name = 'op'; op.value = 'approve'; f.querySelectorAll('button[name=op]').forEach(b => b.removeAttribute('name')); f.appendChild(op); f.submit();",
            vec![],
        )
        .await?;
    clerk.wait_for_text("STAFF_FORBIDDEN").await?;

    // The approver, in French, approves; the page shows the offer and the transaction code.
    let approver = browser.session(Lang::Fr).await?;
    sign_in(&approver, &agco, "alain").await?;
    approver.goto(&format!("{agco}{app_path}")).await?;
    approver.wait_for_text("Données vérifiées").await?;
    check(&approver, "issuer-application").await?;
    approver.click_button("Approuver et faire l’offre").await?;
    approver.wait_for_text("Code de transaction").await?;
    check(&approver, "issuer-offer").await?;
    let offer = json!({
        "credential_offer_uri": approver.text_of("#offer-link").await?,
        "tx_code": approver.text_of("#tx-code").await?,
    });
    blocking(|| wallet.receive(bins, &offer))?;

    // The bank officer verifies the loan application: ACCEPT.
    let bank = blocking(|| {
        let bank = Bank::start(
            &world,
            include_str!("../../examples/config/policies/loan-application.toml"),
        )?;
        bank.add_staff(&world, "olivia", "officer", PW)?;
        bank.add_staff(&world, "omar", "administrator", PW)?;
        bank.sync(&world)?;
        Ok(bank)
    })?;
    let bank_url = bank.service.url.clone();
    let officer = browser.session(Lang::En).await?;
    sign_in(&officer, &bank_url, "olivia").await?;
    let (verdict, accepted_at) = verify_at_bank(&officer, &wallet, &world, "bank-accept").await?;
    if !verdict.contains("ACCEPT") {
        bail!("the bank did not accept: {verdict}");
    }

    // The approver suspends the licence with a reason; the page says done once published.
    approver.goto(&format!("{agco}/desk/credentials")).await?;
    approver
        .fill(
            "Numéro d’entreprise, numéro de société, numéro de permis ou dénomination sociale",
            &biz.liquor_licence,
        )
        .await?;
    approver.click_button("Rechercher").await?;
    approver.wait_for_text("Valide").await?;
    check(&approver, "issuer-credentials").await?;
    let credential = href(&approver, "#results a").await?;
    approver.goto(&format!("{agco}{credential}")).await?;
    check(&approver, "issuer-credential").await?;
    // Past the browser's own check of the required field, the issuer still refuses a
    // suspension without a reason.
    approver
        .execute(
            "const t = document.getElementById('reason-suspend'); t.removeAttribute('required'); t.form.submit();",
            vec![],
        )
        .await?;
    approver.wait_for_text("REASON_REQUIRED").await?;
    approver.goto(&format!("{agco}{credential}")).await?;
    approver
        .fill("reason-suspend", "Inspection des lieux en attente")
        .await?;
    approver.click_button("Suspendre").await?;
    approver
        .wait_for_text("la liste de statuts publiée l’indique")
        .await?;
    let history = approver.text_of("#status-history").await?;
    if !(history.contains("alain") && history.contains("Inspection des lieux en attente")) {
        bail!("the status history does not name who and why: {history}");
    }

    // The officer syncs the trust bundle from the page and verifies again: REJECT.
    officer.goto(&format!("{bank_url}/desk/trust")).await?;
    check(&officer, "bank-trust").await?;
    officer.click_button("Sync now").await?;
    // The flash of the sync itself: the page says "Last synced" before it too.
    officer.wait_for_text("Trust bundle synced").await?;
    let (verdict, rejected_at) = verify_at_bank(&officer, &wallet, &world, "bank-reject").await?;
    if !(verdict.contains("REJECT") && verdict.contains("SUSPENDED")) {
        bail!("after the suspension the bank should reject as SUSPENDED: {verdict}");
    }

    // Sessions: a signed-out session's cookie no longer works; a cookie of one service is no
    // session on another.
    let cookie_name = bizcred_issuer::desk::cookie_name(&agco);
    let old = clerk
        .cookie(&cookie_name)
        .await?
        .ok_or_else(|| anyhow!("no session cookie {cookie_name}"))?;
    clerk.goto(&format!("{agco}/desk")).await?;
    clerk.click_button("Sign out").await?;
    clerk.wait_for_text("Sign in").await?;
    clerk.set_cookie(old.clone()).await?;
    clerk.goto(&format!("{agco}/desk")).await?;
    clerk.wait_for_text("Your session has ended").await?;
    officer.goto(&format!("{bank_url}/desk")).await?;
    let mut foreign = old.clone();
    foreign.set_name("bizcred_verifier_desk");
    officer.delete_cookie("bizcred_verifier_desk").await?;
    officer.set_cookie(foreign).await?;
    officer.goto(&format!("{bank_url}/desk")).await?;
    officer.wait_for_text("Sign in").await?;

    // Every page of both desks, in both languages, for the screenshots and axe.
    for lang in Lang::ALL {
        let admin = browser.session(lang).await?;
        admin.goto(&format!("{agco}/desk/login")).await?;
        check(&admin, "issuer-login").await?;
        sign_in(&admin, &agco, "ada").await?;
        admin.goto(&format!("{agco}/desk/applications/new")).await?;
        admin
            .click_button(match lang {
                Lang::En => "Open the application",
                Lang::Fr => "Ouvrir la demande",
            })
            .await?;
        admin.wait_for_text("openid4vp://").await?;
        check(&admin, "issuer-application-opened").await?;
        for (path, name) in [
            ("/desk".to_owned(), "issuer-queue"),
            (
                "/desk/applications/new".to_owned(),
                "issuer-new-application",
            ),
            (app_path.clone(), "issuer-application-offered"),
            ("/desk/credentials".to_owned(), "issuer-credentials"),
            (credential.clone(), "issuer-credential-suspended"),
            ("/desk/keys".to_owned(), "issuer-keys"),
            ("/desk/audit".to_owned(), "issuer-audit"),
            ("/desk/staff".to_owned(), "issuer-staff"),
        ] {
            admin.goto(&format!("{agco}{path}")).await?;
            check(&admin, name).await?;
        }
        let audit = {
            admin.goto(&format!("{agco}/desk/audit")).await?;
            admin.text_of("#chain").await?
        };
        if !audit.contains('✔') {
            bail!("the audit chain does not verify: {audit}");
        }
        sign_in(&admin, &bank_url, "omar").await?;
        for path in [
            "/desk",
            "/desk/history",
            "/desk/upload",
            "/desk/trust",
            "/desk/staff",
        ] {
            admin.goto(&format!("{bank_url}{path}")).await?;
            check(&admin, &format!("bank{}", path.replace('/', "-"))).await?;
        }
        for (url, name) in [
            (&accepted_at, "bank-verdict-accept"),
            (&rejected_at, "bank-verdict-reject"),
        ] {
            admin.goto(url).await?;
            check(&admin, name).await?;
        }
        admin.close().await?;
    }
    drop(bank);
    Ok(())
}

/// Starts a verification for the loan application at the bank's desk, has the wallet answer
/// the request shown on the page, waits for the verdict page (it follows by itself) and
/// returns its text and address.
async fn verify_at_bank(
    officer: &Page,
    wallet: &Wallet,
    world: &World,
    name: &str,
) -> Result<(String, String)> {
    let base = {
        let url = officer.current_url().await?;
        url.split("/desk").next().unwrap_or(&url).to_owned()
    };
    officer.goto(&format!("{base}/desk")).await?;
    officer.click_button("Start verification").await?;
    officer.wait_for_text("openid4vp://").await?;
    check(officer, "bank-request").await?;
    let uri = officer.text_of("#request-link").await?;
    let answered: Value = blocking(|| {
        let (_, v, _) = wallet.run(&world.bins, &["present", uri.trim(), "--yes"])?;
        Ok(v)
    })
    .context("the wallet answering the bank")?;
    officer
        .wait_for_url("/desk/verifications/")
        .await
        .context(format!("the wallet answered {answered}"))?;
    let text = officer.text_of("#verdict").await?;
    check(officer, name).await?;
    let at = officer.current_url().await?;
    Ok((format!("{text}\n{}", officer.text().await?), at))
}
