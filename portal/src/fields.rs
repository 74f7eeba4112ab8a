//! The Apply form of a type: one labelled input per applicant claim, shaped by the type's
//! JSON Schema (`schemas/json/`) and labelled from its type metadata. Scalars are one input
//! (a select for an `enum`, a number for an `integer`, a date for a `*_date`); an object (an
//! address, a capacity) is a group of inputs, its `const` members (the country) filled in; a
//! list of texts is one comma-separated input; a list of objects (directors, program
//! accounts) is one line per item, its members separated by semicolons. Reading the form
//! gives the claims as JSON and every field's problem; the agency checks the values.

use std::collections::HashMap;

use serde_json::{Map, Value};

use bizcred_schemas::{CredentialType, Lang};

/// Longest text one input takes.
pub const MAX_INPUT: usize = 4096;
/// Most items one list or line-per-item input takes.
pub const MAX_ITEMS: usize = 100;

/// How one input is entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One line of text.
    Text,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// A whole number.
    Integer,
    /// One of these values.
    Choice(Vec<String>),
    /// A list of texts, separated by commas.
    List,
    /// A list of objects: one per line, these members separated by semicolons.
    Records(Vec<String>),
}

/// One input of the form.
#[derive(Debug, Clone)]
pub struct Field {
    /// The form field's name (`claim.premises_address.locality`).
    pub name: String,
    /// The element id, unique on the page (`municipal-business-licence--premises_address-locality`).
    pub id: String,
    /// Its label from the type metadata.
    pub label: String,
    /// How it is entered.
    pub input: Input,
    /// The schema requires it.
    pub required: bool,
    /// For [`Input::Records`]: the members' labels, in order.
    pub members: Vec<String>,
}

/// One applicant claim: a single input, or a group of them (an object).
#[derive(Debug, Clone)]
pub struct ClaimInput {
    /// The claim's name.
    pub claim: String,
    /// Its label.
    pub label: String,
    /// Its inputs (one unless it is a group).
    pub fields: Vec<Field>,
    /// An object entered member by member.
    pub group: bool,
    /// The schema requires the claim.
    pub required: bool,
    /// Members fixed by the schema (`const`), filled in.
    fixed: Map<String, Value>,
}

/// What is wrong with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Required and left blank.
    Missing,
    /// Not a whole number.
    NotInteger,
    /// Longer than [`MAX_INPUT`] or more than [`MAX_ITEMS`] items.
    TooLong,
    /// A line of a line-per-item input does not have its members (line number, expected).
    Line(usize, usize),
}

/// A problem and the input it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The element id.
    pub id: String,
    /// The label.
    pub label: String,
    /// What.
    pub problem: Problem,
}

fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        Some(d) => &schema["$defs"][d],
        None => node,
    }
}

fn required_of(node: &Value) -> Vec<String> {
    node["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn scalar_input(name: &str, node: &Value) -> Input {
    if let Some(choices) = node["enum"].as_array() {
        let c: Vec<String> = choices
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        if !c.is_empty() {
            return Input::Choice(c);
        }
    }
    match node["type"].as_str() {
        Some("integer") => Input::Integer,
        _ if name.ends_with("_date") => Input::Date,
        _ => Input::Text,
    }
}

fn label(ty: CredentialType, path: &[Value], lang: Lang, fallback: &str) -> String {
    ty.metadata()
        .label(path, lang)
        .unwrap_or(fallback)
        .to_owned()
}

/// The inputs of `claims` (the agency's applicant claims of `ty`), in the agency's order,
/// labelled in `lang`.
pub fn claim_inputs(ty: CredentialType, claims: &[String], lang: Lang) -> Vec<ClaimInput> {
    let schema: Value = serde_json::from_str(ty.schema_json()).unwrap_or(Value::Null);
    let top_required = required_of(&schema);
    claims
        .iter()
        .take(MAX_ITEMS)
        .map(|claim| {
            let node = resolve(&schema, &schema["properties"][claim.as_str()]);
            let id = format!("{}--{claim}", ty.slug());
            let claim_label = label(ty, &[Value::from(claim.as_str())], lang, claim);
            let required = top_required.contains(claim);
            let mut fixed = Map::new();
            let (fields, group) = match node["type"].as_str() {
                Some("object") => {
                    let inner_required = required_of(node);
                    let mut fields = Vec::new();
                    for (member, m) in node["properties"].as_object().into_iter().flatten() {
                        let m = resolve(&schema, m);
                        if let Some(c) = m.get("const") {
                            fixed.insert(member.clone(), c.clone());
                            continue;
                        }
                        fields.push(Field {
                            name: format!("claim.{claim}.{member}"),
                            id: format!("{id}-{member}"),
                            label: label(
                                ty,
                                &[Value::from(claim.as_str()), Value::from(member.as_str())],
                                lang,
                                member,
                            ),
                            input: scalar_input(member, m),
                            required: inner_required.contains(member),
                            members: Vec::new(),
                        });
                    }
                    (fields, true)
                }
                Some("array") => {
                    let items = resolve(&schema, &node["items"]);
                    let (input, members) = if items["type"].as_str() == Some("object") {
                        let names: Vec<String> = items["properties"]
                            .as_object()
                            .map(|p| p.keys().cloned().collect())
                            .unwrap_or_default();
                        let labels = names
                            .iter()
                            .map(|n| {
                                label(
                                    ty,
                                    &[
                                        Value::from(claim.as_str()),
                                        Value::Null,
                                        Value::from(n.as_str()),
                                    ],
                                    lang,
                                    n,
                                )
                            })
                            .collect();
                        (Input::Records(names), labels)
                    } else {
                        (Input::List, Vec::new())
                    };
                    let f = Field {
                        name: format!("claim.{claim}"),
                        id: id.clone(),
                        label: claim_label.clone(),
                        input,
                        required,
                        members,
                    };
                    (vec![f], false)
                }
                // A claim the schema fixes (the liquor licence's class): filled in, no input.
                _ if node.get("const").is_some() => {
                    fixed.insert(claim.clone(), node["const"].clone());
                    (Vec::new(), false)
                }
                _ => {
                    let f = Field {
                        name: format!("claim.{claim}"),
                        id: id.clone(),
                        label: claim_label.clone(),
                        input: scalar_input(claim, node),
                        required,
                        members: Vec::new(),
                    };
                    (vec![f], false)
                }
            };
            ClaimInput {
                claim: claim.clone(),
                label: claim_label,
                fields,
                group,
                required,
                fixed,
            }
        })
        .collect()
}

fn scalar(f: &Field, raw: &str, problems: &mut Vec<FieldProblem>) -> Option<Value> {
    match f.input {
        Input::Integer => match raw.parse::<i64>() {
            Ok(n) => Some(Value::from(n)),
            Err(_) => {
                problems.push(problem(f, Problem::NotInteger));
                None
            }
        },
        _ => Some(Value::String(raw.to_owned())),
    }
}

fn problem(f: &Field, problem: Problem) -> FieldProblem {
    FieldProblem {
        id: f.id.clone(),
        label: f.label.clone(),
        problem,
    }
}

/// Reads the claims from the form's values (`get` answers a field's text): the JSON to send
/// and every input's problem. A claim left wholly blank is not sent unless required.
pub fn read(
    inputs: &[ClaimInput],
    get: &dyn Fn(&str) -> Option<String>,
) -> (Map<String, Value>, Vec<FieldProblem>) {
    let mut claims = Map::new();
    let mut problems = Vec::new();
    for c in inputs {
        if c.fields.is_empty() {
            if let Some(v) = c.fixed.get(&c.claim) {
                claims.insert(c.claim.clone(), v.clone());
            }
            continue;
        }
        let texts: Vec<(usize, String)> = c
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (i, get(&f.name).unwrap_or_default().trim().to_owned()))
            .collect();
        let blank = texts.iter().all(|(_, t)| t.is_empty());
        if blank && !c.required {
            continue;
        }
        let before = problems.len();
        for (i, t) in &texts {
            let f = &c.fields[*i];
            if t.chars().count() > MAX_INPUT {
                problems.push(problem(f, Problem::TooLong));
            } else if t.is_empty() && (f.required || !c.group) {
                problems.push(problem(f, Problem::Missing));
            }
        }
        if problems.len() > before {
            continue;
        }
        if c.group {
            let mut obj = c.fixed.clone();
            for (i, t) in texts {
                let f = &c.fields[i];
                if t.is_empty() {
                    continue;
                }
                let member = f.name.rsplit('.').next().unwrap_or("").to_owned();
                if let Some(v) = scalar(f, &t, &mut problems) {
                    obj.insert(member, v);
                }
            }
            claims.insert(c.claim.clone(), Value::Object(obj));
            continue;
        }
        let (f, t) = (&c.fields[0], &texts[0].1);
        let value = match &f.input {
            Input::List => {
                let items: Vec<Value> = t
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect();
                if items.len() > MAX_ITEMS {
                    problems.push(problem(f, Problem::TooLong));
                    continue;
                }
                Some(Value::Array(items))
            }
            Input::Records(names) => {
                let mut items = Vec::new();
                for (n, line) in t
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .enumerate()
                {
                    let parts: Vec<&str> = line.split(';').map(str::trim).collect();
                    if parts.len() != names.len() || parts.iter().any(|p| p.is_empty()) {
                        problems.push(problem(f, Problem::Line(n + 1, names.len())));
                        break;
                    }
                    let obj: Map<String, Value> = names
                        .iter()
                        .zip(parts)
                        .map(|(k, v)| (k.clone(), Value::String(v.to_owned())))
                        .collect();
                    items.push(Value::Object(obj));
                }
                if items.len() > MAX_ITEMS {
                    problems.push(problem(f, Problem::TooLong));
                }
                (problems.len() == before).then_some(Value::Array(items))
            }
            _ => scalar(f, t, &mut problems),
        };
        if let Some(v) = value {
            claims.insert(c.claim.clone(), v);
        }
    }
    (claims, problems)
}

/// A claim's value as an input shows it (text as is, a number or a boolean written out).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The form's values (by field name) that state `claims`, as [`read`] would read them back:
/// to show the claims as they stand in a form, pre-filled.
pub fn values(inputs: &[ClaimInput], claims: &Map<String, Value>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for c in inputs {
        let Some(v) = claims.get(&c.claim) else {
            continue;
        };
        if c.group {
            for f in &c.fields {
                let member = f.name.rsplit('.').next().unwrap_or("");
                if let Some(m) = v.get(member) {
                    out.insert(f.name.clone(), text_of(m));
                }
            }
            continue;
        }
        let Some(f) = c.fields.first() else {
            continue;
        };
        let text = match (&f.input, v) {
            (Input::List, Value::Array(items)) => {
                items.iter().map(text_of).collect::<Vec<_>>().join(", ")
            }
            (Input::Records(names), Value::Array(items)) => items
                .iter()
                .map(|i| {
                    names
                        .iter()
                        .map(|n| i.get(n).map(text_of).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .collect::<Vec<_>>()
                .join("\n"),
            (_, v) => text_of(v),
        };
        out.insert(f.name.clone(), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn form(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn inputs_follow_the_schema_and_labels_the_metadata() {
        let c = claim_inputs(
            CredentialType::LiquorSalesLicence,
            &[
                "premises_address".into(),
                "capacity".into(),
                "endorsements".into(),
                "operating_name".into(),
            ],
            Lang::Fr,
        );
        assert_eq!(c[0].label, "Adresse de l'établissement");
        assert!(c[0].group);
        let names: Vec<&str> = c[0].fields.iter().map(|f| f.name.as_str()).collect();
        assert!(names.contains(&"claim.premises_address.postal_code"));
        assert!(!names.contains(&"claim.premises_address.country"), "const");
        assert_eq!(c[1].fields[0].input, Input::Integer);
        assert_eq!(c[1].fields[0].label, "Capacité intérieure");
        assert_eq!(c[2].fields[0].input, Input::List);
        assert_eq!(c[3].fields[0].input, Input::Text);
        assert_eq!(
            c[0].fields[0].id,
            "liquor-sales-licence--premises_address-street_address"
        );
        let d = claim_inputs(
            CredentialType::CertificateOfIncorporation,
            &[
                "directors".into(),
                "entity_type".into(),
                "incorporation_date".into(),
            ],
            Lang::En,
        );
        assert_eq!(
            d[0].fields[0].input,
            Input::Records(vec!["given_name".into(), "family_name".into()])
        );
        assert_eq!(d[0].fields[0].members, vec!["Given name", "Family name"]);
        assert!(matches!(d[1].fields[0].input, Input::Choice(ref c) if c.len() == 4));
        assert_eq!(d[2].fields[0].input, Input::Date);
    }

    #[test]
    fn the_form_reads_into_typed_claims() {
        let c = claim_inputs(
            CredentialType::LiquorSalesLicence,
            &[
                "licence_class".into(),
                "premises_address".into(),
                "capacity".into(),
                "endorsements".into(),
            ],
            Lang::En,
        );
        assert!(c[0].fields.is_empty(), "a const claim has no input");
        let (claims, problems) = read(
            &c,
            &form(&[
                ("claim.premises_address.street_address", " 1 King St W "),
                ("claim.premises_address.locality", "Toronto"),
                ("claim.premises_address.region", "ON"),
                ("claim.premises_address.postal_code", "M5H 1A1"),
                ("claim.capacity.indoor", "40"),
                ("claim.capacity.outdoor", "12"),
                ("claim.endorsements", "patio, , catering"),
            ]),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            Value::Object(claims),
            serde_json::json!({
                "licence_class": "liquor_sales_licence",
                "premises_address": {"street_address": "1 King St W", "locality": "Toronto",
                    "region": "ON", "postal_code": "M5H 1A1", "country": "CA"},
                "capacity": {"indoor": 40, "outdoor": 12},
                "endorsements": ["patio", "catering"],
            })
        );
    }

    #[test]
    fn each_problem_names_its_input() {
        let c = claim_inputs(
            CredentialType::LiquorSalesLicence,
            &["premises_address".into(), "capacity".into()],
            Lang::En,
        );
        let (_, problems) = read(
            &c,
            &form(&[
                ("claim.premises_address.locality", "Toronto"),
                ("claim.capacity.indoor", "forty"),
                ("claim.capacity.outdoor", "2"),
            ]),
        );
        let got: Vec<(&str, &Problem)> = problems
            .iter()
            .map(|p| (p.id.as_str(), &p.problem))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "liquor-sales-licence--premises_address-street_address",
                    &Problem::Missing
                ),
                (
                    "liquor-sales-licence--premises_address-region",
                    &Problem::Missing
                ),
                (
                    "liquor-sales-licence--premises_address-postal_code",
                    &Problem::Missing
                ),
                (
                    "liquor-sales-licence--capacity-indoor",
                    &Problem::NotInteger
                ),
            ]
        );
        let d = claim_inputs(
            CredentialType::CertificateOfIncorporation,
            &["directors".into()],
            Lang::En,
        );
        let (claims, problems) = read(&d, &form(&[("claim.directors", "Ana; Silva\nBo")]));
        assert_eq!(problems[0].problem, Problem::Line(2, 2));
        assert!(claims.is_empty());
        let (claims, problems) = read(&d, &form(&[("claim.directors", "Ana; Silva\n\nBo ; Chen")]));
        assert!(problems.is_empty());
        assert_eq!(
            claims["directors"],
            serde_json::json!([{"given_name": "Ana", "family_name": "Silva"},
                               {"given_name": "Bo", "family_name": "Chen"}])
        );
        let (claims, problems) = read(&d, &form(&[]));
        assert!(
            claims.is_empty() && problems.is_empty(),
            "optional and blank"
        );
    }

    #[test]
    fn claims_prefill_the_form_that_reads_them_back() {
        for (ty, names, claims) in [
            (
                CredentialType::LiquorSalesLicence,
                vec![
                    "licence_class",
                    "premises_address",
                    "capacity",
                    "endorsements",
                ],
                serde_json::json!({
                    "licence_class": "liquor_sales_licence",
                    "premises_address": {"street_address": "1 King St W", "locality": "Toronto",
                        "region": "ON", "postal_code": "M5H 1A1", "country": "CA"},
                    "capacity": {"indoor": 40, "outdoor": 12},
                    "endorsements": ["patio", "catering"],
                }),
            ),
            (
                CredentialType::CertificateOfIncorporation,
                vec!["legal_name", "entity_type", "directors"],
                serde_json::json!({
                    "legal_name": "Café du Nord Inc.",
                    "entity_type": "business_corporation",
                    "directors": [{"given_name": "Jennifer", "family_name": "Ng"},
                                  {"given_name": "Sam", "family_name": "Roy"}],
                }),
            ),
        ] {
            let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
            let c = claim_inputs(ty, &names, Lang::En);
            let claims = claims.as_object().expect("object").clone();
            let v = values(&c, &claims);
            assert!(
                !v.contains_key("claim.premises_address.country"),
                "no input: {v:?}"
            );
            let (back, problems) = read(&c, &|k: &str| v.get(k).cloned());
            assert!(problems.is_empty(), "{problems:?} from {v:?}");
            assert_eq!(back, claims, "{v:?}");
        }
    }
}
