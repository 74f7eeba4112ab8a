//! What each desk page shows, prepared from the issuance core's answers: templates only display
//! these values (askama escapes every one of them).

use askama::Template;
use serde_json::{Map, Value};

use bizcred_schemas::CredentialType;
use bizcred_web::{Form, Staff, Tr};

use crate::issuer::{
    ApplicationList, AuditChain, AuditReport, CredentialView, FieldError, Issuer, KeyInfo, Offered,
    Permission, StaffRole,
};
use crate::store::{AppStatus, Application, CredentialStatus, EventKind, ReviewFlag};

/// How a claim is entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FieldKind {
    /// One line of text.
    Text,
    /// A date (`YYYY-MM-DD`).
    Date,
    /// A whole number.
    Integer,
    /// One of a few values.
    Choice(Vec<String>),
    /// A structured value (an address, a list), entered as JSON.
    Json,
}

/// A top-level claim of a type, as a form field.
#[derive(Debug, Clone)]
pub(super) struct ClaimField {
    pub(super) name: String,
    pub(super) kind: FieldKind,
    pub(super) required: bool,
}

/// Claims a credential carries that no one enters (JWT and SD-JWT VC machinery).
const MACHINERY: &[&str] = &[
    "iss",
    "sub",
    "iat",
    "nbf",
    "exp",
    "vct",
    "vct#integrity",
    "cnf",
    "status",
    "jti",
];

/// The claims of a type, in the schema's order, with how each is entered.
pub(super) fn claim_fields(ty: CredentialType) -> Vec<ClaimField> {
    let Ok(schema) = serde_json::from_str::<Value>(ty.schema_json()) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let defs = &schema["$defs"];
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(k, _)| !MACHINERY.contains(&k.as_str()))
        .map(|(name, p)| {
            let resolved = match p["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                Some(d) => &defs[d],
                None => p,
            };
            // `enum`, or a `const` (a choice of one).
            let choices = resolved["enum"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .or_else(|| resolved["const"].as_str().map(|c| vec![c.to_owned()]));
            let kind = match (choices, resolved["type"].as_str()) {
                (Some(c), _) if !c.is_empty() => FieldKind::Choice(c),
                (_, Some("object" | "array")) => FieldKind::Json,
                (_, Some("integer")) => FieldKind::Integer,
                _ if name.ends_with("_date") => FieldKind::Date,
                (_, Some("string")) => FieldKind::Text,
                // A claim whose schema gives no type: entered as JSON so any value can be.
                _ => FieldKind::Json,
            };
            ClaimField {
                name: name.clone(),
                kind,
                required: required.contains(&name.as_str()),
            }
        })
        .collect()
}

/// The label of a claim in the page's language, from the type metadata (the claim's name when
/// the metadata has none).
pub(super) fn claim_label(ty: CredentialType, name: &str, t: &Tr) -> String {
    let lang = bizcred_schemas::Lang::parse(t.lang.tag()).unwrap_or(bizcred_schemas::Lang::En);
    ty.metadata()
        .label(&[Value::String(name.to_owned())], lang)
        .map_or_else(|| name.to_owned(), str::to_owned)
}

/// The name of a type in the page's language.
pub(super) fn type_name(ty: CredentialType, t: &Tr) -> String {
    let lang = bizcred_schemas::Lang::parse(t.lang.tag()).unwrap_or(bizcred_schemas::Lang::En);
    ty.metadata().display_name(lang).to_owned()
}

fn type_name_of(slug: &str, t: &Tr) -> String {
    CredentialType::from_slug(slug).map_or_else(|| slug.to_owned(), |ty| type_name(ty, t))
}

/// The sentences of an application's review flags (issue #14): which prerequisite, what the
/// upstream agency did and when, and what was suspended automatically for it.
pub(super) fn flag_lines(issuer: &Issuer, t: &Tr, flags: &[ReviewFlag]) -> Vec<String> {
    flags
        .iter()
        .map(|f| {
            let ty = CredentialType::from_vct(&f.vct)
                .map_or_else(|| f.vct.clone(), |ty| type_name(ty, t));
            let agency = issuer
                .registered_name(&f.upstream, t.lang != bizcred_web::Lang::En)
                .unwrap_or_else(|| f.upstream.clone());
            let key = if f.event == EventKind::CredentialRevoked {
                "flag.revoked"
            } else {
                "flag.suspended"
            };
            let mut line = t.fill(
                key,
                &[
                    ("type", &ty),
                    ("agency", &agency),
                    ("time", &t.time(f.time)),
                    ("seq", &f.seq.to_string()),
                ],
            );
            if !f.auto_suspended.is_empty() {
                line.push(' ');
                line.push_str(&t.fill(
                    "flag.auto_suspended",
                    &[("credentials", &f.auto_suspended.join(", "))],
                ));
            }
            line
        })
        .collect()
}

/// A claim value as text: strings as they are, anything else as compact JSON.
pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(m) if is_address(m) => address_text(m),
        other => other.to_string(),
    }
}

fn is_address(m: &Map<String, Value>) -> bool {
    m.contains_key("street_address") || m.contains_key("locality")
}

fn address_text(m: &Map<String, Value>) -> String {
    [
        "street_address",
        "locality",
        "region",
        "postal_code",
        "country",
    ]
    .iter()
    .filter_map(|k| m.get(*k).and_then(Value::as_str))
    .collect::<Vec<_>>()
    .join(", ")
}

fn state_badge(s: AppStatus) -> &'static str {
    match s {
        AppStatus::Issued | AppStatus::Offered => "ok",
        AppStatus::Refused | AppStatus::Withdrawn => "bad",
        _ => "warn",
    }
}

/// One row of the work queue.
pub(super) struct QueueRow {
    pub(super) id: String,
    pub(super) business: String,
    pub(super) ty: String,
    pub(super) state: String,
    pub(super) badge: &'static str,
    pub(super) age: String,
    pub(super) created: String,
    pub(super) flagged: bool,
}

/// The work queue.
#[derive(Template)]
#[template(path = "desk/queue.html")]
pub(super) struct QueuePage {
    pub(super) t: Tr,
    pub(super) states: Vec<(String, String, bool)>,
    pub(super) types: Vec<(String, String, bool)>,
    pub(super) rows: Vec<QueueRow>,
    pub(super) summary: String,
    pub(super) filtered: bool,
    /// Only the applications flagged for review (`flagged=1`).
    pub(super) flagged_only: bool,
}

impl QueuePage {
    pub(super) fn new(
        issuer: &Issuer,
        t: &Tr,
        _staff: &Staff,
        state: Option<AppStatus>,
        ty: Option<CredentialType>,
        list: &ApplicationList,
        now: i64,
    ) -> QueuePage {
        let states = AppStatus::ALL
            .iter()
            .map(|s| {
                (
                    s.as_str().to_owned(),
                    t.get(&format!("state.{}", s.as_str())),
                    Some(*s) == state,
                )
            })
            .collect();
        let types = issuer
            .config
            .types
            .iter()
            .map(|(ct, _)| (ct.slug().to_owned(), type_name(*ct, t), Some(*ct) == ty))
            .collect();
        let rows = list
            .items
            .iter()
            .map(|a| QueueRow {
                id: a.id.clone(),
                business: business_of(&a.claims).unwrap_or_else(|| t.get("queue.not_yet_known")),
                ty: type_name_of(&a.credential_type, t),
                state: t.get(&format!("state.{}", a.status.as_str())),
                badge: state_badge(a.status),
                age: t.age(now - a.created),
                created: t.time(a.created),
                flagged: !a.dependencies.flags.is_empty(),
            })
            .collect::<Vec<_>>();
        let summary = t.fill(
            "queue.summary",
            &[
                ("shown", &t.number(rows.len() as u64)),
                ("matched", &t.number(list.matched as u64)),
            ],
        );
        QueuePage {
            t: t.clone(),
            states,
            types,
            rows,
            summary,
            filtered: state.is_some() || ty.is_some(),
            flagged_only: false,
        }
    }
}

/// The business an application is about, by the names its claims hold.
fn business_of(claims: &Map<String, Value>) -> Option<String> {
    ["legal_name", "licensee_legal_name", "operating_name"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Opening an application.
#[derive(Template)]
#[template(path = "desk/new_application.html")]
pub(super) struct NewApplicationPage {
    pub(super) t: Tr,
    pub(super) csrf: String,
    pub(super) types: Vec<(String, String, String)>,
}

impl NewApplicationPage {
    pub(super) fn new(issuer: &Issuer, t: &Tr, staff: &Staff) -> NewApplicationPage {
        let types = issuer
            .config
            .types
            .iter()
            .map(|(ct, prereq)| {
                let needs = if prereq.is_empty() {
                    t.get("new.no_prerequisites")
                } else {
                    t.fill(
                        "new.prerequisites",
                        &[(
                            "types",
                            &prereq
                                .iter()
                                .map(|p| type_name(*p, t))
                                .collect::<Vec<_>>()
                                .join(", "),
                        )],
                    )
                };
                (ct.slug().to_owned(), type_name(*ct, t), needs)
            })
            .collect();
        NewApplicationPage {
            t: t.clone(),
            csrf: staff.csrf.clone(),
            types,
        }
    }
}

/// An application just opened: the request for the applicant's wallet, if it has one.
#[derive(Template)]
#[template(path = "desk/created.html")]
pub(super) struct CreatedPage {
    pub(super) t: Tr,
    pub(super) id: String,
    pub(super) ty: String,
    pub(super) request: Option<String>,
    pub(super) qr: Option<String>,
}

impl CreatedPage {
    pub(super) fn new(
        _issuer: &Issuer,
        t: &Tr,
        app: &Application,
        request: Option<&str>,
    ) -> CreatedPage {
        CreatedPage {
            t: t.clone(),
            id: app.id.clone(),
            ty: type_name_of(&app.credential_type, t),
            request: request.map(str::to_owned),
            qr: request.and_then(|r| bizcred_web::qr::svg(r, &t.get("created.qr_label"))),
        }
    }
}

/// A claim as the application page shows it.
pub(super) struct ClaimView {
    pub(super) name: String,
    pub(super) label: String,
    pub(super) value: String,
    /// `text`, `date`, `number`, `choice` or `json`.
    pub(super) kind: &'static str,
    pub(super) choices: Vec<(String, bool)>,
    pub(super) required: bool,
    pub(super) error: Option<String>,
}

/// One event of an application's history.
pub(super) struct EventView {
    pub(super) time: String,
    pub(super) who: String,
    pub(super) action: String,
    pub(super) note: String,
}

/// An application.
#[derive(Template)]
#[template(path = "desk/application.html")]
pub(super) struct ApplicationPage {
    pub(super) t: Tr,
    pub(super) title: String,
    pub(super) csrf: String,
    pub(super) id: String,
    pub(super) ty: String,
    pub(super) state: String,
    pub(super) badge: &'static str,
    pub(super) created: String,
    pub(super) age: String,
    pub(super) verified: Vec<ClaimView>,
    pub(super) fields: Vec<ClaimView>,
    pub(super) errors: Vec<(String, String)>,
    pub(super) editable: bool,
    pub(super) may_approve: bool,
    pub(super) may_decide: bool,
    pub(super) withdrawable: bool,
    pub(super) request: Option<String>,
    pub(super) qr: Option<String>,
    pub(super) prerequisites: Option<String>,
    pub(super) history: Vec<EventView>,
    /// The review flags raised by upstream agencies' events.
    pub(super) flags: Vec<String>,
}

impl ApplicationPage {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        issuer: &Issuer,
        t: &Tr,
        staff: &Staff,
        app: &Application,
        sent: Option<&Form>,
        errors: &[FieldError],
        now: i64,
    ) -> ApplicationPage {
        let ty = CredentialType::from_slug(&app.credential_type);
        let role = staff.role.parse::<StaffRole>().ok();
        let may = |p: Permission| role.is_some_and(|r| r.may(p));
        let error_of = |name: &str| {
            let pointer = format!("/{name}");
            let msgs: Vec<String> = errors
                .iter()
                .filter(|e| e.field == pointer || e.field.starts_with(&format!("{pointer}/")))
                .map(|e| field_message(t, e))
                .collect();
            (!msgs.is_empty()).then(|| msgs.join("; "))
        };
        let (mut verified, mut fields) = (Vec::new(), Vec::new());
        if let Some(ty) = ty {
            for f in claim_fields(ty) {
                let held = app.claims.get(&f.name);
                let is_verified = app.verified_claims.contains(&f.name);
                if is_verified {
                    verified.push(ClaimView {
                        label: claim_label(ty, &f.name, t),
                        value: held.map(value_text).unwrap_or_default(),
                        name: f.name,
                        kind: "text",
                        choices: Vec::new(),
                        required: f.required,
                        error: None,
                    });
                    continue;
                }
                let value = match sent.and_then(|s| s.get(&format!("claim.{}", f.name))) {
                    Some(v) => v.to_owned(),
                    None => match (held, &f.kind) {
                        (Some(v), FieldKind::Json) => {
                            serde_json::to_string_pretty(v).unwrap_or_default()
                        }
                        (Some(Value::String(s)), _) => s.clone(),
                        (Some(v), _) => v.to_string(),
                        (None, _) => String::new(),
                    },
                };
                let (kind, choices) = match &f.kind {
                    FieldKind::Text => ("text", Vec::new()),
                    FieldKind::Date => ("date", Vec::new()),
                    FieldKind::Integer => ("number", Vec::new()),
                    FieldKind::Json => ("json", Vec::new()),
                    FieldKind::Choice(c) => (
                        "choice",
                        c.iter().map(|x| (x.clone(), *x == value)).collect(),
                    ),
                };
                fields.push(ClaimView {
                    label: claim_label(ty, &f.name, t),
                    error: error_of(&f.name),
                    name: f.name,
                    value,
                    kind,
                    choices,
                    required: f.required,
                });
            }
        }
        // Errors not tied to one field (the claim set as a whole) are listed at the top too.
        let errors = errors
            .iter()
            .map(|e| {
                let name = e
                    .field
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let label = match ty {
                    Some(ty) if !name.is_empty() => claim_label(ty, &name, t),
                    _ => t.get("application.all_claims"),
                };
                (
                    format!("field-{name}"),
                    format!("{label}: {}", field_message(t, e)),
                )
            })
            .collect();
        let editable = matches!(
            app.status,
            AppStatus::AwaitingApproval | AppStatus::ChangesRequested
        );
        let request =
            (app.status == AppStatus::AwaitingPrerequisites && !app.nonce_used).then(|| {
                bizcred_core::oid4vp::request_uri(
                    &issuer.client_id(),
                    &format!("{}/oid4vp/request/{}", issuer.config.public_url, app.id),
                )
            });
        let history = app
            .history
            .iter()
            .map(|e| EventView {
                time: t.time(e.time),
                who: e.actor.name().to_owned(),
                action: t.get(&format!("event.{}", e.action)),
                note: e.note.clone().unwrap_or_default(),
            })
            .collect();
        let prerequisites = app.verification.as_ref().map(|v| {
            let verdict = v["verdict"].as_str().unwrap_or("");
            match verdict {
                "ACCEPT" => t.get("application.prerequisites_accepted"),
                _ => t.fill(
                    "application.prerequisites_refused",
                    &[(
                        "codes",
                        &v["failures"]
                            .as_array()
                            .map(|f| {
                                f.iter()
                                    .filter_map(|x| x["code"].as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default(),
                    )],
                ),
            }
        });
        let ty_name = type_name_of(&app.credential_type, t);
        ApplicationPage {
            title: t.fill("application.title", &[("type", &ty_name)]),
            csrf: staff.csrf.clone(),
            id: app.id.clone(),
            ty: ty_name,
            state: t.get(&format!("state.{}", app.status.as_str())),
            badge: state_badge(app.status),
            created: t.time(app.created),
            age: t.age(now - app.created),
            verified,
            fields,
            errors,
            editable,
            may_approve: editable && may(Permission::Approve),
            may_decide: editable,
            withdrawable: matches!(
                app.status,
                AppStatus::AwaitingPrerequisites
                    | AppStatus::AwaitingApproval
                    | AppStatus::ChangesRequested
            ),
            qr: request
                .as_deref()
                .and_then(|r| bizcred_web::qr::svg(r, &t.get("created.qr_label"))),
            request,
            prerequisites,
            history,
            flags: flag_lines(issuer, t, &app.dependencies.flags),
            t: t.clone(),
        }
    }
}

/// What is wrong with a field, for the page's language: the validator's own sentence (English,
/// naming the value) on English pages; on French pages the catalogue's sentence for its reason
/// code, or the validator's sentence for a code the catalogue does not translate.
fn field_message(t: &Tr, e: &FieldError) -> String {
    if t.lang == bizcred_web::Lang::En {
        return e.message.clone();
    }
    t.optional(&format!("field.{}", e.code.as_str().to_ascii_lowercase()))
        .unwrap_or_else(|| e.message.clone())
}

/// The offer made by an approval.
#[derive(Template)]
#[template(path = "desk/offer.html")]
pub(super) struct OfferPage {
    pub(super) t: Tr,
    pub(super) application: String,
    pub(super) link: String,
    pub(super) qr: Option<String>,
    /// `None` when the applicant sees it through the application's capability link.
    pub(super) tx_code: Option<String>,
    pub(super) expires: String,
}

impl OfferPage {
    pub(super) fn new(t: &Tr, o: &Offered) -> OfferPage {
        OfferPage {
            t: t.clone(),
            application: o.application_id.clone(),
            qr: bizcred_web::qr::svg(&o.credential_offer_uri, &t.get("offer.qr_label")),
            link: o.credential_offer_uri.clone(),
            tx_code: o.tx_code.clone(),
            expires: t.time(o.expires),
        }
    }
}

fn status_badge(s: CredentialStatus) -> &'static str {
    match s {
        CredentialStatus::Valid => "ok",
        CredentialStatus::Suspended => "warn",
        CredentialStatus::Revoked => "bad",
    }
}

/// One credential in a list.
pub(super) struct CredentialRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) ty: String,
    pub(super) numbers: String,
    pub(super) status: String,
    pub(super) badge: &'static str,
    pub(super) issued: String,
}

fn credential_row(t: &Tr, v: &CredentialView) -> CredentialRow {
    let c = &v.claims;
    let numbers = [
        (&c.business_number, "credentials.bn"),
        (&c.corporation_number, "credentials.corporation"),
        (&c.licence_number, "credentials.licence"),
    ]
    .iter()
    .filter_map(|(v, k)| v.as_ref().map(|v| format!("{} {v}", t.get(k))))
    .collect::<Vec<_>>()
    .join(" · ");
    CredentialRow {
        id: v.record.id.clone(),
        name: c
            .legal_name
            .clone()
            .or_else(|| c.operating_name.clone())
            .unwrap_or_default(),
        ty: v
            .credential_type
            .map_or_else(|| v.record.vct.clone(), |ty| type_name(ty, t)),
        numbers,
        status: t.get(&format!("status.{}", v.record.status.as_str())),
        badge: status_badge(v.record.status),
        issued: t.time(v.record.issued_at),
    }
}

/// Credential search.
#[derive(Template)]
#[template(path = "desk/credentials.html")]
pub(super) struct CredentialsPage {
    pub(super) t: Tr,
    pub(super) q: String,
    pub(super) searched: bool,
    pub(super) rows: Vec<CredentialRow>,
}

impl CredentialsPage {
    pub(super) fn new(t: &Tr, q: &str, found: Option<&[CredentialView]>) -> CredentialsPage {
        CredentialsPage {
            t: t.clone(),
            q: q.to_owned(),
            searched: found.is_some(),
            rows: found
                .unwrap_or_default()
                .iter()
                .map(|v| credential_row(t, v))
                .collect(),
        }
    }
}

/// One status change.
pub(super) struct StatusEventView {
    pub(super) time: String,
    pub(super) status: String,
    pub(super) who: String,
    pub(super) reason: String,
}

/// A credential.
#[derive(Template)]
#[template(path = "desk/credential.html")]
pub(super) struct CredentialPage {
    pub(super) t: Tr,
    pub(super) csrf: String,
    pub(super) row: CredentialRow,
    pub(super) application: String,
    pub(super) list: String,
    pub(super) kid: String,
    pub(super) history: Vec<StatusEventView>,
    /// (action, label, reason required, danger)
    pub(super) actions: Vec<(&'static str, String, bool, bool)>,
    /// The review flags of the application it was issued for.
    pub(super) flags: Vec<String>,
}

impl CredentialPage {
    pub(super) fn new(
        issuer: &Issuer,
        t: &Tr,
        staff: &Staff,
        v: &CredentialView,
    ) -> CredentialPage {
        let role = staff.role.parse::<StaffRole>().ok();
        let may = |p: Permission| role.is_some_and(|r| r.may(p));
        let mut actions = Vec::new();
        let s = v.record.status;
        if s == CredentialStatus::Valid && may(Permission::Suspend) {
            actions.push(("suspend", t.get("credential.suspend"), true, false));
        }
        if s == CredentialStatus::Suspended && may(Permission::Reinstate) {
            actions.push(("reinstate", t.get("credential.reinstate"), false, false));
        }
        if s != CredentialStatus::Revoked && may(Permission::Revoke) {
            actions.push(("revoke", t.get("credential.revoke"), true, true));
        }
        CredentialPage {
            csrf: staff.csrf.clone(),
            row: credential_row(t, v),
            application: v.record.application_id.clone(),
            list: format!(
                "{} #{}",
                issuer.status_uri(v.record.status_list),
                v.record.status_idx
            ),
            kid: v.record.kid.clone(),
            history: v
                .record
                .history
                .iter()
                .map(|h| StatusEventView {
                    time: t.time(h.time),
                    status: t.get(&format!("status.{}", h.status.as_str())),
                    who: h.actor.name().to_owned(),
                    reason: h.reason.clone().unwrap_or_default(),
                })
                .collect(),
            actions,
            flags: Vec::new(),
            t: t.clone(),
        }
    }
}

/// The signing key.
#[derive(Template)]
#[template(path = "desk/keys.html")]
pub(super) struct KeysPage {
    pub(super) t: Tr,
    pub(super) csrf: String,
    pub(super) did: String,
    pub(super) kid: String,
    pub(super) number: String,
    pub(super) public_key: String,
    pub(super) version: String,
    pub(super) created: String,
    pub(super) newest: String,
    pub(super) may_rotate: bool,
}

impl KeysPage {
    pub(super) fn new(t: &Tr, staff: &Staff, k: &KeyInfo, may_rotate: bool) -> KeysPage {
        KeysPage {
            t: t.clone(),
            csrf: staff.csrf.clone(),
            did: k.did.clone(),
            kid: k.kid.clone(),
            number: k.key_number.to_string(),
            public_key: k.public_key.clone(),
            version: k
                .did_version
                .map_or_else(|| t.get("keys.unknown"), |v| v.to_string()),
            created: k
                .created
                .map_or_else(|| t.get("keys.unknown"), |c| t.time(c)),
            newest: k.newest_version_id.clone(),
            may_rotate,
        }
    }
}

/// One audit entry.
pub(super) struct AuditRow {
    pub(super) seq: u64,
    pub(super) time: String,
    pub(super) event: String,
    pub(super) who: String,
    pub(super) details: String,
}

/// The audit log.
#[derive(Template)]
#[template(path = "desk/audit.html")]
pub(super) struct AuditPage {
    pub(super) t: Tr,
    pub(super) intact: bool,
    pub(super) chain: String,
    pub(super) total: String,
    pub(super) rows: Vec<AuditRow>,
}

impl AuditPage {
    pub(super) fn new(t: &Tr, r: &AuditReport) -> AuditPage {
        let (intact, chain) = match &r.chain {
            AuditChain::Intact { entries } => (
                true,
                t.fill("audit.intact", &[("n", &t.number(*entries as u64))]),
            ),
            AuditChain::Broken { at, reason } => (
                false,
                t.fill(
                    "audit.broken",
                    &[("at", &at.to_string()), ("reason", reason)],
                ),
            ),
        };
        AuditPage {
            intact,
            chain,
            total: t.number(r.total as u64),
            rows: r
                .entries
                .iter()
                .map(|e| {
                    let mut details = e.details.clone();
                    if let Some(m) = details.as_object_mut() {
                        m.remove("actor");
                    }
                    AuditRow {
                        seq: e.seq,
                        time: e.time.clone(),
                        event: e.event.clone(),
                        who: e
                            .actor
                            .as_ref()
                            .map_or_else(|| t.get("audit.system"), |a| a.name().to_owned()),
                        details: details.to_string(),
                    }
                })
                .collect(),
            t: t.clone(),
        }
    }
}

/// One staff account.
pub(super) struct AccountRow {
    pub(super) name: String,
    pub(super) role: String,
    pub(super) disabled: bool,
    pub(super) is_self: bool,
}

/// Staff accounts (administrators).
#[derive(Template)]
#[template(path = "desk/staff.html")]
pub(super) struct StaffPage {
    pub(super) t: Tr,
    pub(super) csrf: String,
    pub(super) rows: Vec<AccountRow>,
    pub(super) roles: Vec<(String, String)>,
}

impl StaffPage {
    pub(super) fn new(
        t: &Tr,
        staff: &Staff,
        accounts: &[bizcred_web::Account],
        roles: &[&str],
    ) -> StaffPage {
        StaffPage {
            csrf: staff.csrf.clone(),
            rows: accounts
                .iter()
                .map(|a| AccountRow {
                    name: a.name.clone(),
                    role: t.role(&a.role),
                    disabled: a.disabled,
                    is_self: a.name == staff.name,
                })
                .collect(),
            roles: roles.iter().map(|r| ((*r).to_owned(), t.role(r))).collect(),
            t: t.clone(),
        }
    }
}
