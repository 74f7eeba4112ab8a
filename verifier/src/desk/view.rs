//! What the bank page's templates display, built from the library's answers: every text is
//! chosen and translated here, so the templates only lay it out (and askama escapes it).

use askama::Template;
use serde_json::Value;

use bizcred_core::time::parse_utc;
use bizcred_schemas::{CredentialType, ReasonCode};
use bizcred_web::i18n::{Catalog, Lang, Tr};
use bizcred_web::{claim_rows, schema_lang, ClaimRow};

use crate::service::{TrustStatus, Verification};
use crate::store::ReceiptEntry;
use crate::Policy;

/// A message in a language: `lang` is set when it is not the page's (a sentence only the
/// English catalogue has, a detail recorded in English), so assistive technology reads it right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Text {
    /// The text.
    pub(super) text: String,
    /// Its language tag, when not the page's.
    pub(super) lang: Option<&'static str>,
}

/// The sentence of a reason code in the page's language (the code's English sentence when the
/// catalogue has none).
pub(super) fn reason(catalog: &Catalog, lang: Lang, code: &str) -> Text {
    match catalog.lookup(lang, &format!("reason.{code}")) {
        Some(s) => Text {
            text: s.to_owned(),
            lang: None,
        },
        None => Text {
            text: ReasonCode::parse(code)
                .map_or_else(|| code.to_owned(), |c| c.sentence().to_owned()),
            lang: (lang != Lang::En).then_some("en"),
        },
    }
}

/// A check's name as a sentence (the name itself for a check the catalogue does not know).
pub(super) fn check_sentence(catalog: &Catalog, lang: Lang, check: &str) -> Text {
    match catalog.lookup(lang, &format!("check.{check}")) {
        Some(s) => Text {
            text: s.to_owned(),
            lang: None,
        },
        None => Text {
            text: check.to_owned(),
            lang: Some("en"),
        },
    }
}

/// The display name of a credential type in `lang` (the `vct` for an unknown type).
pub(super) fn type_name(vct: &str, lang: Lang) -> String {
    CredentialType::from_vct(vct).map_or_else(
        || vct.to_owned(),
        |t| t.metadata().display_name(schema_lang(lang)).to_owned(),
    )
}

/// The verdict's word, sentence and style (`ok`, `bad`, `warn`), from its code.
pub(super) fn verdict_words(t: &Tr, code: &str) -> (String, String, &'static str) {
    match code {
        "ACCEPT" => (
            t.get("verdict.accept"),
            t.get("verdict.accept_sentence"),
            "ok",
        ),
        "REJECT" => (
            t.get("verdict.reject"),
            t.get("verdict.reject_sentence"),
            "bad",
        ),
        _ => (
            t.get("verdict.indeterminate"),
            t.get("verdict.indeterminate_sentence"),
            "warn",
        ),
    }
}

fn time_text(t: &Tr, rfc3339: &str) -> String {
    parse_utc(rfc3339).map_or_else(|_| rfc3339.to_owned(), |s| t.time(s))
}

/// One check of the report.
#[derive(Debug, Clone)]
pub(super) struct CheckRow {
    /// The credential it was about (its type's name), or the whole presentation.
    pub(super) credential: String,
    /// What was checked, as a sentence.
    pub(super) sentence: Text,
    /// Passed, failed or undecided, in words.
    pub(super) result: String,
    /// Its style.
    pub(super) class: &'static str,
}

/// One failure.
#[derive(Debug, Clone)]
pub(super) struct FailureRow {
    /// The credential it was about, or the whole presentation.
    pub(super) credential: String,
    /// The reason code.
    pub(super) code: String,
    /// The code's sentence.
    pub(super) sentence: Text,
    /// The pipeline's detail (English), while the report is held.
    pub(super) detail: Option<String>,
}

/// One presented credential.
#[derive(Debug, Clone)]
pub(super) struct CredentialView {
    /// The type's name.
    pub(super) title: String,
    /// The issuer's name (or DID).
    pub(super) issuer: String,
    /// When it was issued.
    pub(super) issued: String,
    /// Its status in words.
    pub(super) status: String,
    /// The status's style.
    pub(super) status_class: &'static str,
    /// The disclosed information (empty when the report is no longer held).
    pub(super) claims: Vec<ClaimRow>,
}

/// The verdict page's content.
#[derive(Debug, Clone)]
pub(super) struct VerdictView {
    /// The receipt's id.
    pub(super) id: String,
    /// `ACCEPT`, `REJECT` or `INDETERMINATE`.
    pub(super) code: String,
    /// The verdict in words.
    pub(super) word: String,
    /// What it means.
    pub(super) sentence: String,
    /// Its style.
    pub(super) class: &'static str,
    /// For an undecided verdict on stale data: the last known decision, in words and code.
    pub(super) last_known: Option<(String, String)>,
    /// The policy's name.
    pub(super) policy: String,
    /// When it was verified.
    pub(super) verified_at: String,
    /// Whether the full report is held (checks, details, disclosed information).
    pub(super) held: bool,
    /// Every check.
    pub(super) checks: Vec<CheckRow>,
    /// Every failure.
    pub(super) failures: Vec<FailureRow>,
    /// The credentials.
    pub(super) credentials: Vec<CredentialView>,
    /// The registry data's time.
    pub(super) registry_as_of: Option<String>,
    /// Its age when verified.
    pub(super) registry_age: Option<String>,
    /// Status lists and their signed times.
    pub(super) status_lists: Vec<(String, String)>,
    /// The registry checkpoint used.
    pub(super) checkpoint: Option<String>,
    /// The receipt's download address.
    pub(super) receipt_href: String,
}

fn status_words(t: &Tr, status: &str) -> (String, &'static str) {
    match status {
        "valid" => (t.get("status.valid"), "ok"),
        "revoked" => (t.get("status.revoked"), "bad"),
        "suspended" => (t.get("status.suspended"), "bad"),
        _ => (t.get("status.unknown"), "warn"),
    }
}

/// The labelled rows of a credential's disclosed claims.
pub(super) fn claims(
    t: &Tr,
    vct: &str,
    disclosed: &serde_json::Map<String, Value>,
) -> Vec<ClaimRow> {
    let scalar = |_: &str, v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => t.get("common.yes"),
        Value::Bool(false) => t.get("common.no"),
        Value::Null => t.get("common.none"),
        other => other.to_string(),
    };
    claim_rows(t, vct, disclosed, &scalar)
}

/// The verdict page's content for a kept verification.
pub(super) fn verdict(
    t: &Tr,
    catalog: &Catalog,
    v: &Verification,
    policy: Option<&Policy>,
) -> VerdictView {
    let lang = t.lang;
    let r = &v.receipt;
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let report = v.outcome.as_ref().map(|o| &o.report);
    // The credential query id → the type's name (from the policy, else what was presented).
    let vct_of = |id: &str| -> Option<String> {
        policy
            .and_then(|p| p.credentials.iter().find(|c| c.id == id))
            .map(|c| c.credential_type.vct().to_owned())
            .or_else(|| {
                report
                    .and_then(|rep| rep.credentials.iter().find(|c| c.id == id))
                    .map(|c| c.vct.clone())
            })
            .or_else(|| {
                r.get("credentials")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|c| c["id"] == id))
                    .and_then(|c| c["vct"].as_str())
                    .map(str::to_owned)
            })
    };
    let credential_name = |id: Option<&str>| match id {
        None => t.get("common.presentation"),
        Some(id) => vct_of(id).map_or_else(|| id.to_owned(), |vct| type_name(&vct, lang)),
    };
    let code = report.map_or_else(|| s("verdict"), |rep| verdict_code(rep.verdict).to_owned());
    let (word, sentence, class) = verdict_words(t, &code);
    let last_known = r
        .get("last_known")
        .and_then(Value::as_str)
        .map(|lk| (verdict_words(t, lk).0, lk.to_owned()));
    let checks = report.map_or_else(Vec::new, |rep| {
        rep.checks
            .iter()
            .map(|c| {
                let (result, class) = match c.outcome {
                    "pass" => (t.get("outcome.pass"), "ok"),
                    "fail" => (t.get("outcome.fail"), "bad"),
                    _ => (t.get("outcome.indeterminate"), "warn"),
                };
                CheckRow {
                    credential: credential_name(c.credential.as_deref()),
                    sentence: check_sentence(catalog, lang, c.check),
                    result,
                    class,
                }
            })
            .collect()
    });
    let failures = match report {
        Some(rep) => rep
            .failures
            .iter()
            .map(|f| FailureRow {
                credential: credential_name(f.credential.as_deref()),
                code: f.code.as_str().to_owned(),
                sentence: reason(catalog, lang, f.code.as_str()),
                detail: Some(f.message.clone()),
            })
            .collect(),
        None => r
            .get("failures")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|f| {
                        let code = f["code"].as_str().unwrap_or("").to_owned();
                        FailureRow {
                            credential: credential_name(f["credential"].as_str()),
                            sentence: reason(catalog, lang, &code),
                            code,
                            detail: None,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let credentials = match report {
        Some(rep) => rep
            .credentials
            .iter()
            .map(|c| {
                let (status, status_class) = status_words(t, &c.status);
                CredentialView {
                    title: type_name(&c.vct, lang),
                    issuer: c.issuer_name.clone().unwrap_or_else(|| c.issuer.clone()),
                    issued: c
                        .issued_at
                        .as_deref()
                        .map_or_else(|| t.get("common.none"), |i| time_text(t, i)),
                    status,
                    status_class,
                    claims: claims(t, &c.vct, &c.disclosed),
                }
            })
            .collect(),
        None => r
            .get("credentials")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let (status, status_class) =
                            status_words(t, c["status"].as_str().unwrap_or(""));
                        CredentialView {
                            title: type_name(c["vct"].as_str().unwrap_or(""), lang),
                            issuer: c["issuer"].as_str().unwrap_or("").to_owned(),
                            issued: c["issued_at"]
                                .as_str()
                                .map_or_else(|| t.get("common.none"), |i| time_text(t, i)),
                            status,
                            status_class,
                            claims: Vec::new(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let as_of = r.get("as_of");
    let registry = as_of
        .and_then(|a| a.get("registry"))
        .and_then(Value::as_str);
    let verified_at = s("verified_at");
    let registry_age = registry
        .and_then(|reg| parse_utc(reg).ok())
        .zip(parse_utc(&verified_at).ok())
        .map(|(reg, at)| t.age(at - reg));
    let status_lists = as_of
        .and_then(|a| a.get("status"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(uri, iat)| (uri.clone(), time_text(t, iat.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    VerdictView {
        receipt_href: format!("/desk/verifications/{}/receipt", v.id),
        id: v.id.clone(),
        code,
        word,
        sentence,
        class,
        last_known,
        policy: s("policy"),
        verified_at: time_text(t, &verified_at),
        held: report.is_some(),
        checks,
        failures,
        credentials,
        registry_as_of: registry.map(|reg| time_text(t, reg)),
        registry_age,
        status_lists,
        checkpoint: r
            .get("registry_checkpoint")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// A reason shown with its code (an error summary).
#[derive(Debug, Clone)]
pub(super) struct Problem {
    /// The id of the field it is about (empty: the form as a whole).
    pub(super) field: String,
    /// The message.
    pub(super) message: String,
    /// The reason code.
    pub(super) code: String,
}

/// `/desk`: start a verification.
#[derive(Template)]
#[template(path = "desk/start.html")]
pub(super) struct StartPage {
    /// Translator.
    pub(super) t: Tr,
    /// The session's CSRF token.
    pub(super) csrf: String,
    /// Each policy: name, credentials asked for.
    pub(super) policies: Vec<(String, String)>,
}

impl StartPage {
    /// The page for the configured policies.
    pub(super) fn new(t: Tr, csrf: String, policies: &[Policy]) -> StartPage {
        let policies = policies
            .iter()
            .map(|p| {
                let names: Vec<String> = p
                    .credentials
                    .iter()
                    .map(|c| type_name(c.credential_type.vct(), t.lang))
                    .collect();
                (p.name.clone(), names.join(", "))
            })
            .collect();
        StartPage { t, csrf, policies }
    }
}

/// `/desk/wait/{state}`: the request for the wallet, updated live.
#[derive(Template)]
#[template(path = "desk/wait.html")]
pub(super) struct WaitPage {
    /// Translator.
    pub(super) t: Tr,
    /// The policy's name.
    pub(super) policy: String,
    /// When the request expires.
    pub(super) expires: String,
    /// The `openid4vp://` URI.
    pub(super) request_uri: String,
    /// Its QR code (SVG drawn on the server), when it fits in one.
    pub(super) qr: Option<String>,
    /// This page (the "check again" link).
    pub(super) href: String,
    /// The JSON status the script polls.
    pub(super) poll: String,
    /// The request as a file.
    pub(super) file_href: String,
}

/// A request that is not open.
#[derive(Template)]
#[template(path = "desk/gone.html")]
pub(super) struct GonePage {
    /// Translator.
    pub(super) t: Tr,
}

/// `/desk/verifications/{id}`: the verdict.
#[derive(Template)]
#[template(path = "desk/verdict.html")]
pub(super) struct VerdictPage {
    /// Translator.
    pub(super) t: Tr,
    /// The content.
    pub(super) v: VerdictView,
}

/// One row of the history.
#[derive(Debug, Clone)]
pub(super) struct HistoryRow {
    /// When.
    pub(super) time: String,
    /// The policy.
    pub(super) policy: String,
    /// The verdict in words.
    pub(super) word: String,
    /// Its code.
    pub(super) code: String,
    /// Its style.
    pub(super) class: &'static str,
    /// The verdict page.
    pub(super) href: String,
    /// The link's accessible name.
    pub(super) label: String,
}

/// `/desk/history`: the history.
#[derive(Template)]
#[template(path = "desk/history.html")]
pub(super) struct HistoryPage {
    /// Translator.
    pub(super) t: Tr,
    /// The verifications, newest first.
    pub(super) rows: Vec<HistoryRow>,
    /// The next page, when there may be one.
    pub(super) older: Option<String>,
}

impl HistoryPage {
    /// The page for `entries` (`limit` asked for: a full page may have a next one).
    pub(super) fn new(t: Tr, entries: &[ReceiptEntry], limit: usize) -> HistoryPage {
        let rows = entries
            .iter()
            .map(|e| {
                let (word, _, class) = verdict_words(&t, &e.verdict);
                let time = t.time(e.at);
                HistoryRow {
                    label: t.fill("history.open_label", &[("time", &time)]),
                    time,
                    policy: e.policy.clone(),
                    word,
                    code: e.verdict.clone(),
                    class,
                    href: format!("/desk/verifications/{}", e.id),
                }
            })
            .collect();
        let older = (entries.len() >= limit)
            .then(|| entries.last())
            .flatten()
            .map(|e| format!("/desk/history?before={}", e.id));
        HistoryPage { t, rows, older }
    }
}

/// `/desk/upload`: verify a presentation file.
#[derive(Template)]
#[template(path = "desk/upload.html")]
pub(super) struct UploadPage {
    /// Translator.
    pub(super) t: Tr,
    /// The session's CSRF token.
    pub(super) csrf: String,
    /// The field's hint (with the size bound).
    pub(super) hint: String,
    /// Why the last upload was refused.
    pub(super) problem: Option<Problem>,
}

/// One policy's freshness.
#[derive(Debug, Clone)]
pub(super) struct FreshRow {
    /// The policy.
    pub(super) policy: String,
    /// Its limit, in words.
    pub(super) limit: String,
    /// Fresh or stale, in words.
    pub(super) state: String,
    /// Its style.
    pub(super) class: &'static str,
}

/// `/desk/trust`: the trust bundle.
#[derive(Template)]
#[template(path = "desk/trust.html")]
pub(super) struct TrustPage {
    /// Translator.
    pub(super) t: Tr,
    /// The session's CSRF token.
    pub(super) csrf: String,
    /// The registry URL.
    pub(super) registry: Option<String>,
    /// When a bundle was last accepted, and how long ago.
    pub(super) last_sync: Option<String>,
    /// The registry data's time.
    pub(super) as_of: Option<String>,
    /// Its age.
    pub(super) age: Option<String>,
    /// Entries held.
    pub(super) entries: String,
    /// Issuers registered.
    pub(super) issuers: String,
    /// Each policy's freshness.
    pub(super) policies: Vec<FreshRow>,
}

impl TrustPage {
    /// The page for `s` at `now`.
    pub(super) fn new(t: Tr, csrf: String, s: &TrustStatus, now: i64) -> TrustPage {
        let policies = s
            .policies
            .iter()
            .map(|p| {
                let (state, class) = if p.fresh {
                    (t.get("trust.fresh"), "ok")
                } else {
                    (t.get("trust.stale"), "bad")
                };
                FreshRow {
                    policy: p.policy.clone(),
                    limit: t.age(p.limit),
                    state,
                    class,
                }
            })
            .collect();
        TrustPage {
            csrf,
            registry: s.registry.clone(),
            last_sync: s.last_sync.map(|l| {
                format!(
                    "{} ({})",
                    t.time(l.at),
                    t.fill("trust.ago", &[("age", &t.age(now - l.at))])
                )
            }),
            as_of: s.registry_as_of.map(|a| t.time(a)),
            age: s.age.map(|a| t.age(a)),
            entries: t.number(s.size),
            issuers: t.number(s.issuers as u64),
            policies,
            t,
        }
    }
}

/// One staff account.
#[derive(Debug, Clone)]
pub(super) struct AccountRow {
    /// Account name.
    pub(super) name: String,
    /// Role in words.
    pub(super) role: String,
    /// Disabled.
    pub(super) disabled: bool,
    /// State in words.
    pub(super) state: String,
    /// Last changed.
    pub(super) changed: String,
    /// The disable or enable button's accessible name.
    pub(super) toggle_label: String,
    /// The reset field's label.
    pub(super) password_label: String,
    /// The reset field's id.
    pub(super) password_id: String,
    /// The signed-in member's own account (not disabled from here).
    pub(super) own: bool,
}

/// `/desk/staff`: the staff accounts.
#[derive(Template)]
#[template(path = "desk/staff.html")]
pub(super) struct StaffPage {
    /// Translator.
    pub(super) t: Tr,
    /// The session's CSRF token.
    pub(super) csrf: String,
    /// The accounts.
    pub(super) rows: Vec<AccountRow>,
    /// Roles: value, label.
    pub(super) roles: Vec<(&'static str, String)>,
    /// What the last post was refused for.
    pub(super) problems: Vec<Problem>,
    /// The add form's name, kept after a refusal.
    pub(super) new_name: String,
    /// The add form's role, kept after a refusal.
    pub(super) new_role: String,
}

impl StaffPage {
    /// The page for `accounts`, for the member `me`.
    pub(super) fn new(
        t: Tr,
        csrf: String,
        me: &str,
        accounts: &[bizcred_web::Account],
        problems: Vec<Problem>,
        new_name: String,
        new_role: String,
    ) -> StaffPage {
        let rows = accounts
            .iter()
            .map(|a| AccountRow {
                role: t.role(&a.role),
                disabled: a.disabled,
                state: t.get(if a.disabled {
                    "staff.disabled"
                } else {
                    "staff.active"
                }),
                changed: t.time(a.changed),
                toggle_label: t.fill(
                    if a.disabled {
                        "staff.enable_label"
                    } else {
                        "staff.disable_label"
                    },
                    &[("name", &a.name)],
                ),
                password_label: t.fill("staff.new_password", &[("name", &a.name)]),
                password_id: format!("password-{}", a.name),
                own: a.name == me,
                name: a.name.clone(),
            })
            .collect();
        let roles = crate::staff::ROLES
            .iter()
            .map(|r| (*r, t.role(r)))
            .collect();
        StaffPage {
            t,
            csrf,
            rows,
            roles,
            problems,
            new_name,
            new_role,
        }
    }

    /// The problem with the field `id`, if any.
    pub(super) fn problem(&self, id: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.field == id)
    }
}

/// The verdict's code as the report spells it.
pub(super) fn verdict_code(v: crate::Verdict) -> &'static str {
    match v {
        crate::Verdict::Accept => "ACCEPT",
        crate::Verdict::Reject => "REJECT",
        crate::Verdict::Indeterminate => "INDETERMINATE",
    }
}
