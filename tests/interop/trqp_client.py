#!/usr/bin/env python3
"""An independent TRQP v2.0 client, written from the specifications only (no bizcred code).

Given an authority's DID, it resolves the DID (did:webvh v1.0: the DID log over HTTP, every
entry's hash chain, SCID and eddsa-jcs-2022 proof checked), finds the TRQP endpoint the DID
document names (a service of type "TRQP") and the governance framework (type
"GovernanceFramework"), and asks the endpoint authorization and recognition queries, positive
and negative, validating every answer against the specification's JSON schemas: the TRQP
responses on 200, an RFC 9457 problem details document on every error.

    trqp_client.py AUTHORITY_DID ISSUER_DID AUTHORIZED_TYPE OTHER_TYPE RECOGNIZED_DID RECOGNIZED_TYPE [--revoked]

With --revoked, the recognition is expected to have been revoked (recognized: false).
Prints one JSON line: {"ok": true, "checks": N, ...} or {"error": ...} (exit 1).

Sources:
* ToIP Trust Registry Query Protocol v2.0, trustoverip/tswg-trust-registry-protocol @0b6c24b:
  specification/v2/core/api.md, core/https_binding.md ("POST /authorization",
  "POST /recognition" relative to the endpoint; 400 for invalid JSON or missing fields, 404 for
  an entity, authority, action or resource not recognized; errors as RFC 7807 problem
  details), core/identifiers.md (authority_id discoverable via its DID document; action and
  resource non-empty; context a JSON object, context.time RFC 3339), conformance.md, and the
  JSON schemas core/schema/trqp_{authorization,recognition}_{request,response}.schema.json,
  transcribed below.
* RFC 9457 (Problem Details for HTTP APIs), Appendix A (the non-normative JSON Schema),
  transcribed below; this client also requires type, title, status and detail.
* DIF did:webvh v1.0 (DID-to-HTTPS transformation, entry hash, SCID, proofs) and W3C Data
  Integrity EdDSA Cryptosuites v1.0 (eddsa-jcs-2022), RFC 8785 (JCS).
"""

import hashlib
import json
import re
import sys
import urllib.parse

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator, FormatChecker

# --- The TRQP v2.0 schemas (core/schema/*.schema.json of the specification), transcribed. ---

_CONTEXT_REQUEST = {
    "type": "object",
    "properties": {
        "time": {"type": "string", "format": "date-time"},
        "locator": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
}
_CONTEXT_RESPONSE = {
    "type": "object",
    "properties": {
        "time": {"type": "string"},
        "locator": {"type": "string"},
    },
    "additionalProperties": {"type": "string"},
}

AUTHORIZATION_REQUEST = {
    "$id": "trqp-authorization-request",
    "title": "AuthorizationRequest",
    "type": "object",
    "required": ["entity_id", "action", "resource", "authority_id"],
    "properties": {
        "entity_id": {"type": "string"},
        "authority_id": {"type": "string"},
        "action": {"type": "string"},
        "resource": {"type": "string"},
        "context": _CONTEXT_REQUEST,
    },
}

AUTHORIZATION_RESPONSE = {
    "$id": "trqp-authorization-response",
    "title": "AuthorizationResponse",
    "type": "object",
    "required": ["entity_id", "action", "resource", "authority_id", "time_evaluated", "authorized"],
    "properties": {
        "entity_id": {"type": "string"},
        "authority_id": {"type": "string"},
        "action": {"type": "string"},
        "resource": {"type": "string"},
        "authorized": {"type": "boolean"},
        "time_requested": {"type": "string", "format": "date-time"},
        "time_evaluated": {"type": "string", "format": "date-time"},
        "message": {"type": "string"},
        "context": _CONTEXT_RESPONSE,
    },
}

RECOGNITION_REQUEST = {
    "$id": "trqp-recognition-request",
    "title": "RecognitionRequest",
    "type": "object",
    "required": ["entity_id", "action", "resource", "authority_id"],
    "properties": {
        "entity_id": {"type": "string"},
        "authority_id": {"type": "string"},
        "action": {"type": "string"},
        "resource": {"type": "string"},
        "context": {
            "type": "object",
            "properties": {"time": {"type": "string", "format": "date-time"}},
            "additionalProperties": {"type": "string"},
        },
    },
}

RECOGNITION_RESPONSE = {
    "$id": "trqp-recognition-response",
    "title": "RecognitionResponse",
    "type": "object",
    "required": ["entity_id", "action", "resource", "authority_id", "time_evaluated", "recognized"],
    "properties": {
        "entity_id": {"type": "string"},
        "authority_id": {"type": "string"},
        "action": {"type": "string"},
        "resource": {"type": "string"},
        "recognized": {"type": "boolean"},
        "time_requested": {"type": "string", "format": "date-time"},
        "time_evaluated": {"type": "string", "format": "date-time"},
        "message": {"type": "string"},
        "context": {
            "type": "object",
            "properties": {"time": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        },
    },
}

# RFC 9457 Appendix A, with the members this client requires.
PROBLEM = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "An RFC 9457 problem object",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri-reference"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "format": "uri-reference"},
    },
}

# RFC 3339 date-time in UTC ("using only Z (+00:00) offset"), checked whether or not the
# jsonschema installation has a date-time format checker.
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|\+00:00)$")

CHECKS = 0


def fail(msg):
    print(json.dumps({"error": msg, "checks": CHECKS}))
    sys.exit(1)


def check(cond, msg):
    global CHECKS
    CHECKS += 1
    if not cond:
        fail(msg)


def validate(schema, doc, what):
    errors = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(doc), key=str)
    check(not errors, f"{what}: does not validate against {schema.get('title')}: {[e.message for e in errors][:3]} in {doc}")
    for k in ("time_requested", "time_evaluated"):
        if k in doc:
            check(RFC3339_UTC.match(doc[k]) is not None, f"{what}: {k} {doc[k]!r} is not RFC 3339 UTC")


# --- did:webvh v1.0 resolution, from the specification. ---

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(b: bytes) -> str:
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + out


def b58decode(s: str) -> bytes:
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def jcs(v) -> bytes:
    # RFC 8785 for the values a DID log holds (strings, integers, booleans, null, objects and
    # arrays; keys are ASCII, so code-unit order is code-point order).
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def multihash_b58(data: bytes) -> str:
    return b58encode(b"\x12\x20" + hashlib.sha256(data).digest())


def did_log_url(did: str) -> str:
    # did:webvh:<SCID>:<domain>[%3A<port>][:path...] -> https://domain[:port]/path/did.jsonl, or
    # /.well-known/did.jsonl without a path (http only for localhost, as the test serves it).
    parts = did.split(":")
    check(len(parts) >= 4 and parts[0] == "did" and parts[1] == "webvh", f"{did} is not did:webvh")
    host = urllib.parse.unquote(parts[3])
    scheme = "http" if host.split(":")[0] == "localhost" else "https"
    path = [urllib.parse.unquote(p) for p in parts[4:]]
    if not path:
        return f"{scheme}://{host}/.well-known/did.jsonl"
    return f"{scheme}://{host}/" + "/".join(path) + "/did.jsonl"


def multikey_ed25519(mk: str) -> Ed25519PublicKey:
    raw = b58decode(mk[1:]) if mk.startswith("z") else b""
    check(raw[:2] == b"\xed\x01" and len(raw) == 34, f"{mk} is not an Ed25519 multikey")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def verify_proof(doc: dict, proof: dict, update_keys):
    check(proof.get("type") == "DataIntegrityProof" and proof.get("cryptosuite") == "eddsa-jcs-2022",
          f"unsupported proof {proof.get('type')}/{proof.get('cryptosuite')}")
    vm = proof.get("verificationMethod", "")
    check(vm.startswith("did:key:") and "#" in vm, f"proof key {vm} is not a did:key")
    mk = vm[len("did:key:"):].split("#")[0]
    check(mk in update_keys, "the entry is signed by a key that is not an update key")
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    if "@context" in doc:
        config["@context"] = doc["@context"]
    data = hashlib.sha256(jcs(config)).digest() + hashlib.sha256(jcs(doc)).digest()
    sig = b58decode(proof["proofValue"][1:])
    try:
        multikey_ed25519(mk).verify(sig, data)
    except Exception:
        fail("a DID log entry's proof does not verify")


def resolve(did: str) -> dict:
    url = did_log_url(did)
    r = requests.get(url, timeout=10)
    check(r.status_code == 200, f"GET {url}: {r.status_code}")
    entries = [json.loads(l) for l in r.text.splitlines() if l.strip()]
    check(entries, "the DID log is empty")
    scid = did.split(":")[2]
    prev, params, active_keys = scid, {}, None
    for n, e in enumerate(entries, 1):
        body = {k: v for k, v in e.items() if k != "proof"}
        params = {**params, **e.get("parameters", {})}
        check(params.get("method") == "did:webvh:1.0", "not a did:webvh 1.0 log")
        if n == 1:
            check(params.get("scid") == scid, "the first entry's scid is not the DID's")
            pre = json.loads(json.dumps({**body, "versionId": "{SCID}"}).replace(scid, "{SCID}"))
            check(multihash_b58(jcs(pre)) == scid, "the SCID does not hash the first entry")
            # The first entry is signed by its own update keys; later ones by the keys in force
            # before them (this client does not follow pre-rotation logs).
            active_keys = params.get("updateKeys", [])
        number, _, entry_hash = e["versionId"].partition("-")
        check(number == str(n), "version numbers do not increase by one")
        check(multihash_b58(jcs({**body, "versionId": prev})) == entry_hash, "an entry hash does not verify")
        proofs = e.get("proof")
        proofs = proofs if isinstance(proofs, list) else [proofs]
        for p in proofs:
            verify_proof(body, p, active_keys)
        active_keys = params.get("updateKeys", [])
        prev = e["versionId"]
    doc = entries[-1]["state"]
    check(doc.get("id") == did, "the resolved document is not the DID's")
    return doc


def service(doc: dict, kind: str) -> str:
    found = [s for s in doc.get("service", []) if s.get("type") == kind]
    check(len(found) == 1 and isinstance(found[0].get("serviceEndpoint"), str),
          f"the authority's DID document names no single {kind} service")
    return found[0]["serviceEndpoint"]


# --- The queries. ---

def post(url, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": content_type}, timeout=10)


def expect_answer(r, schema, what):
    check(r.status_code == 200, f"{what}: HTTP {r.status_code} {r.text[:300]}")
    check(r.headers.get("Content-Type", "").startswith("application/json"), f"{what}: not application/json")
    doc = r.json()
    validate(schema, doc, what)
    return doc


def expect_problem(r, status, what):
    check(r.status_code == status, f"{what}: expected {status}, got {r.status_code} {r.text[:300]}")
    check(r.headers.get("Content-Type", "").startswith("application/problem+json"),
          f"{what}: {r.headers.get('Content-Type')} is not application/problem+json")
    doc = r.json()
    validate(PROBLEM, doc, what)
    check(doc["status"] == status, f"{what}: the problem's status {doc['status']} is not {status}")
    return doc


def main(argv):
    revoked = "--revoked" in argv
    args = [a for a in argv if a != "--revoked"]
    if len(args) != 6:
        fail("usage: trqp_client.py AUTHORITY_DID ISSUER_DID AUTHORIZED_TYPE OTHER_TYPE RECOGNIZED_DID RECOGNIZED_TYPE [--revoked]")
    authority, issuer, authorized_type, other_type, recognized, recognized_type = args

    # The endpoint, found from the authority's DID (identifiers.md: authority_id makes the
    # TRQP endpoint and the governance framework discoverable).
    doc = resolve(authority)
    base = service(doc, "TRQP").rstrip("/")
    egf = service(doc, "GovernanceFramework")
    r = requests.get(egf, timeout=10)
    check(r.status_code == 200, f"the governance framework at {egf}: HTTP {r.status_code}")

    az, rc = f"{base}/authorization", f"{base}/recognition"
    seen = {}

    # Authorization, positive: fractional seconds in context.time come back as sent.
    q = {"entity_id": issuer, "authority_id": authority, "action": "issue", "resource": authorized_type,
         "context": {"time": "2030-01-02T03:04:05.678Z", "locator": "interop"}}
    # Far enough ahead that the grant (made now) holds; evaluate also without a time.
    validate(AUTHORIZATION_REQUEST, q, "authorization query")
    a = expect_answer(post(az, q), AUTHORIZATION_RESPONSE, "authorization (authorized)")
    check(a["authorized"] is True, f"not authorized: {a}")
    check(a["time_requested"] == q["context"]["time"], f"time_requested {a.get('time_requested')} is not as sent")
    check(a["context"] == q["context"], "the context is not echoed")
    check(all(a[k] == q[k] for k in ("entity_id", "authority_id", "action", "resource")), "the query is not echoed")
    now_q = {k: v for k, v in q.items() if k != "context"}
    a = expect_answer(post(az, now_q), AUTHORIZATION_RESPONSE, "authorization without a time")
    check(a["authorized"] is True and "time_requested" not in a, f"{a}")
    seen["authorized"] = True

    # Authorization, negative: a type this issuer may not issue; before the grant.
    neg = {**q, "resource": other_type}
    a = expect_answer(post(az, neg), AUTHORIZATION_RESPONSE, "authorization (other type)")
    check(a["authorized"] is False, f"authorized for another type: {a}")
    early = {**q, "context": {"time": "2001-01-01T00:00:00Z"}}
    a = expect_answer(post(az, early), AUTHORIZATION_RESPONSE, "authorization (before the grant)")
    check(a["authorized"] is False, f"authorized before the grant: {a}")

    # Unknown entity, authority, action, resource: 404 problem documents.
    for k, v in (("entity_id", "did:web:nobody.example"), ("authority_id", "did:web:other-authority.example"),
                 ("action", "revoke"), ("resource", "urn:example:no-such-type")):
        expect_problem(post(az, {**q, k: v}), 404, f"authorization with an unknown {k}")
    # Strict input: 400.
    for what, body in (("an empty action", {**q, "action": ""}), ("an empty resource", {**q, "resource": ""}),
                       ("a context that is no object", {**q, "context": "2030-01-01T00:00:00Z"}),
                       ("a context.time that is no time", {**q, "context": {"time": "tomorrow"}}),
                       ("no entity_id", {k: v for k, v in q.items() if k != "entity_id"}),
                       ("malformed JSON", "{\"entity_id\": ")):
        expect_problem(post(az, body), 400, f"authorization with {what}")
    expect_problem(post(az, q, "text/plain"), 415, "authorization as text/plain")
    expect_problem(requests.get(az, timeout=10), 405, "GET on the authorization endpoint")
    expect_problem(requests.get(f"{base}/no-such-query", timeout=10), 404, "an unknown path")

    # Recognition.
    rq = {"entity_id": recognized, "authority_id": authority, "action": "recognize", "resource": recognized_type,
          "context": {"time": "2030-01-02T03:04:05.5Z"}}
    validate(RECOGNITION_REQUEST, rq, "recognition query")
    a = expect_answer(post(rc, rq), RECOGNITION_RESPONSE, "recognition")
    check(a["recognized"] is (not revoked), f"recognized should be {not revoked}: {a}")
    check(a["time_requested"] == rq["context"]["time"] and a["context"] == rq["context"], f"{a}")
    seen["recognized"] = a["recognized"]
    a = expect_answer(post(rc, {**rq, "resource": other_type}), RECOGNITION_RESPONSE, "recognition (other type)")
    check(a["recognized"] is False, f"recognized for another type: {a}")
    for k, v in (("entity_id", "did:web:never-recognized.example"), ("authority_id", "did:web:other-authority.example"),
                 ("action", "govern"), ("resource", "urn:example:no-such-type")):
        expect_problem(post(rc, {**rq, k: v}), 404, f"recognition with an unknown {k}")
    expect_problem(post(rc, {**rq, "context": ["x"]}), 400, "recognition with a context that is no object")

    print(json.dumps({"ok": True, "checks": CHECKS, "endpoint": base, **seen}))


if __name__ == "__main__":
    main(sys.argv[1:])
