//! The JSON API over the real repository, through the service's router: an issuer's push is
//! verified credential by credential (an unauthorized issuer's, a holder-bound one and garbage
//! refused with their codes, the good ones searchable at once), bounded pushes, the search and
//! business answers, and the download of a credential as issued.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use bizcred_repository::service;
use common::{claims, World, INC, ISSUED};

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value, String) {
    let resp = app.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

fn push(body: String) -> Request<Body> {
    Request::post("/api/credentials")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn a_push_is_verified_credential_by_credential_and_bounded() {
    let w = World::new();
    let repo = w.open();
    let app = service::api(repo);
    let good = w.record(
        claims(
            "1000001",
            "Boulangerie Éloïse Inc.",
            "active",
            "Sudbury",
            "123456782",
        ),
        10,
        ISSUED,
    );
    let forged_issuer = w
        .cra
        .issue_public(
            INC,
            claims("1000002", "Impostor Inc.", "active", "Toronto", "812345676"),
            11,
            ISSUED,
        )
        .serialize();
    let (status, report, _) = call(
        &app,
        push(json!({"credentials": [good, forged_issuer, "nonsense"]}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (report["accepted"].as_u64(), report["refused"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(report["refusals"][0]["index"], 1);
    assert_eq!(report["refusals"][0]["code"], "ISSUER_NOT_AUTHORIZED");
    assert_eq!(report["refusals"][1]["code"], "PUBLIC_RECORD_REFUSED");
    // Searchable at once; the impostor is nowhere.
    let (status, found, _) = call(
        &app,
        Request::get("/api/search?q=boulangerie%20eloise")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["total"], 1);
    let (_, none, _) = call(
        &app,
        Request::get("/api/search?q=impostor")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(none["total"], 0);
    // The business answer and the credential as issued.
    let (status, b, _) = call(
        &app,
        Request::get("/api/businesses/1000001")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = b["credentials"][0]["id"].as_str().expect("id").to_owned();
    let (status, _, text) = call(
        &app,
        Request::get(format!("/credentials/{id}"))
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.starts_with("ey") && text.ends_with('~'));
    // Refusals of the request itself, with their codes.
    let (status, e, _) = call(&app, push("{\"credentials\": 5}".into())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "REQUEST_INVALID");
    let many = vec!["x"; service::MAX_PUSH_CREDENTIALS + 1];
    let (status, e, _) = call(&app, push(json!({"credentials": many}).to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["code"], "PUBLIC_RECORD_TOO_LARGE");
    let (status, e, _) = call(
        &app,
        push(format!(
            "{{\"credentials\": [\"{}\"]}}",
            "x".repeat(9 << 20)
        )),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["code"], "PUBLIC_RECORD_TOO_LARGE");
    let (status, e, _) = call(
        &app,
        Request::get("/api/search?q=a&page=0")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["code"], "SEARCH_QUERY_INVALID");
    let (status, e, _) = call(
        &app,
        Request::get("/api/businesses/7777777")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(e["code"], "BUSINESS_NOT_FOUND");
}

/// Pushes are verified one at a time: a push that arrives while another is verified is
/// answered at once with 503 `REPOSITORY_BUSY` and `Retry-After`, never queued; the first one
/// lands, and a push after it is taken.
#[tokio::test]
async fn a_push_while_another_is_verified_is_told_to_come_back() {
    let w = World::new();
    let app = service::api(w.open());
    let records: Vec<String> = (0..200)
        .map(|i| {
            let corp = format!("{}", 2_000_000 + i);
            w.record(
                claims(
                    &corp,
                    &format!("Entreprise {i} Inc."),
                    "active",
                    "Sudbury",
                    "123456782",
                ),
                100 + i as u64,
                ISSUED,
            )
        })
        .collect();
    let body = json!({"credentials": records}).to_string();
    // Both are polled by one task: the first holds its turn while its batch is verified.
    let (first, second) = tokio::join!(
        app.clone().oneshot(push(body.clone())),
        app.clone().oneshot(push(body.clone()))
    );
    let (first, second) = (first.expect("first"), second.expect("second"));
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let bytes = axum::body::to_bytes(second.into_body(), 1 << 20)
        .await
        .expect("body");
    let e: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(e["code"], "REPOSITORY_BUSY");
    let (status, report, _) = call(&app, push(body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["already_held"], 200, "{report}");
}
