#!/usr/bin/env python3
"""An independent OpenID4VCI 1.0 wallet, written from the specifications only (Python,
`cryptography` and `requests`; no bizcred code), used to check that bizcred issuers interoperate.

Usage: oid4vci_wallet.py <openid-credential-offer URI> <tx_code> [--store FILE] [--dpop]

It runs the pre-authorized code flow (offer by value or by reference, issuer and authorization
server metadata, token with tx_code, nonce, `openid4vci-proof+jwt` key proof, credential
request), then verifies the SD-JWT VC it receives: it resolves the issuer's did:webvh DID by
fetching its DID log from the location the did:webvh spec gives, takes the key the header's
`kid` names in the version in force at the credential's `iat`, checks the Ed25519 signature,
the `cnf` binding to its own key and every disclosure's digest, and prints the verified claims
as JSON. With `--store FILE` it keeps one holder key and every credential it receives in FILE
(plain JSON: this is a test wallet), for `oid4vp_wallet.py` to present. Exit 0 on success, 1 on
any failure.

With `--dpop` it sender-constrains its access token with DPoP (RFC 9449), as written in the RFC:
it requires `dpop_signing_alg_values_supported` with ES256 in the authorization server
metadata, makes a fresh P-256 key (apart from its credential key) and sends a `dpop+jwt` proof
(`jti`, `htm`, `htu`, `iat`, the server's `nonce`, and `ath` with the token) with the token
request and the credential request, presenting the token with the `DPoP` scheme; it follows
the `DPoP-Nonce` header and retries once when told `use_dpop_nonce`. It checks that the token
is of type DPoP, that the same token presented as a bearer token and a replayed proof are both
refused with a `WWW-Authenticate: DPoP` challenge, then tells the issuer's notification
endpoint (OpenID4VCI 1.0 section 11) `credential_accepted` once the credential verified, and
reports all of it under `dpop` in its output.
"""
import base64
import hashlib
import json
import os
import sys
import time
import urllib.parse
from datetime import datetime, timezone

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives import hashes, serialization

PRE_AUTH = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b58decode(s: str) -> bytes:
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * (len(s) - len(s.lstrip("1"))) + raw


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def parse_time(t: str) -> int:
    return int(datetime.strptime(t[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())


def did_log_url(did: str) -> str:
    # did:webvh:<scid>:<domain>[:path...] -> https://domain/path/did.jsonl (http for localhost)
    parts = did.split(":")[3:]
    host = urllib.parse.unquote(parts[0])
    scheme = "http" if host.startswith("localhost") else "https"
    if len(parts) == 1:
        return f"{scheme}://{host}/.well-known/did.jsonl"
    return f"{scheme}://{host}/" + "/".join(parts[1:]) + "/did.jsonl"


def resolve_key(kid: str, at: int) -> Ed25519PublicKey:
    did = kid.split("#")[0]
    lines = [json.loads(l) for l in requests.get(did_log_url(did), timeout=10).text.splitlines() if l.strip()]
    active = [e for e in lines if parse_time(e["versionTime"]) <= at]
    if not active:
        fail("the DID did not exist at the credential's iat")
    state = active[-1]["state"]
    if state["id"] != did:
        fail("the DID log is not the log of the issuer's DID")
    for vm in state.get("verificationMethod", []):
        vid = vm["id"] if not vm["id"].startswith("#") else did + vm["id"]
        if vid == kid:
            mk = b58decode(vm["publicKeyMultibase"][1:])
            if mk[:2] != b"\xed\x01":
                fail("not an Ed25519 multikey")
            return Ed25519PublicKey.from_public_bytes(mk[2:])
    fail(f"{kid} is not in the issuer's DID document")


class Dpop:
    """DPoP proofs (RFC 9449) by a P-256 key of this wallet's own, and the newest server nonce."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {"kty": "EC", "crv": "P-256", "x": b64u(numbers.x.to_bytes(32, "big")), "y": b64u(numbers.y.to_bytes(32, "big"))}
        self.nonce = None

    def proof(self, method, url, access_token=None):
        # htu: the URL without query and fragment (section 4.2).
        htu = url.split("#")[0].split("?")[0]
        header = b64u(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}).encode())
        claims = {"jti": b64u(os.urandom(16)), "htm": method, "htu": htu, "iat": int(time.time())}
        if self.nonce:
            claims["nonce"] = self.nonce
        if access_token is not None:
            claims["ath"] = b64u(hashlib.sha256(access_token.encode("ascii")).digest())
        payload = b64u(json.dumps(claims).encode())
        der = self.key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{header}.{payload}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def heard(self, resp):
        if resp.headers.get("DPoP-Nonce"):
            self.nonce = resp.headers["DPoP-Nonce"]

    def send(self, url, make):
        """Sends `make(proof)`; once more with the server's nonce when told use_dpop_nonce
        (a 400 at the token endpoint, section 8; a 401 challenge at a resource, section 9)."""
        resp = make()
        self.heard(resp)
        asked = resp.status_code in (400, 401) and "DPoP-Nonce" in resp.headers and (
            "use_dpop_nonce" in resp.headers.get("WWW-Authenticate", "") or error_of(resp) == "use_dpop_nonce")
        if asked:
            resp = make()
            self.heard(resp)
        return resp


def error_of(resp, member="error"):
    try:
        return resp.json().get(member)
    except ValueError:
        return None


def load_store(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        return {"key": b64u(raw), "credentials": []}


def main():
    args = sys.argv[1:]
    use_dpop = "--dpop" in args
    args = [a for a in args if a != "--dpop"]
    offer_uri, tx_code = args[0], args[1]
    store_path = args[3] if len(args) > 3 and args[2] == "--store" else None
    store = load_store(store_path) if store_path else None
    q = urllib.parse.parse_qs(urllib.parse.urlparse(offer_uri).query)
    if "credential_offer" in q:
        offer = json.loads(q["credential_offer"][0])
    else:
        offer = requests.get(q["credential_offer_uri"][0], timeout=10).json()
    issuer = offer["credential_issuer"]
    config_id = offer["credential_configuration_ids"][0]
    code = offer["grants"][PRE_AUTH]["pre-authorized_code"]
    meta = requests.get(issuer + "/.well-known/openid-credential-issuer", timeout=10).json()
    if meta["credential_issuer"] != issuer:
        fail("metadata names another issuer")
    conf = meta["credential_configurations_supported"][config_id]
    as_url = (meta.get("authorization_servers") or [issuer])[0]
    as_meta = requests.get(as_url + "/.well-known/oauth-authorization-server", timeout=10).json()
    token_form = {"grant_type": PRE_AUTH, "pre-authorized_code": code, "tx_code": tx_code}
    report = {}
    dpop = None
    if use_dpop:
        if "ES256" not in as_meta.get("dpop_signing_alg_values_supported", []):
            fail("the authorization server does not advertise DPoP with ES256")
        dpop = Dpop()
        tok = dpop.send(as_meta["token_endpoint"], lambda: requests.post(
            as_meta["token_endpoint"], data=token_form, headers={"DPoP": dpop.proof("POST", as_meta["token_endpoint"])}, timeout=10))
        report["nonce_required"] = dpop.nonce is not None
    else:
        tok = requests.post(as_meta["token_endpoint"], data=token_form, timeout=10)
    if tok.status_code != 200:
        fail(f"token: {tok.status_code} {tok.text}")
    access = tok.json()["access_token"]
    if use_dpop:
        report["token_type"] = tok.json().get("token_type")
        if report["token_type"] != "DPoP":
            fail(f"a DPoP token request was answered with token_type {report['token_type']}")
    nonce_resp = requests.post(meta["nonce_endpoint"], timeout=10)
    if dpop:
        dpop.heard(nonce_resp)
    nonce = nonce_resp.json()["c_nonce"]

    key = Ed25519PrivateKey.from_private_bytes(unb64u(store["key"])) if store else Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(pub)}
    header = b64u(json.dumps({"alg": "EdDSA", "typ": "openid4vci-proof+jwt", "jwk": jwk}).encode())
    payload = b64u(json.dumps({"aud": issuer, "iat": int(time.time()), "nonce": nonce}).encode())
    proof = f"{header}.{payload}.{b64u(key.sign(f'{header}.{payload}'.encode()))}"
    cred_req = {"credential_configuration_id": config_id, "proofs": {"jwt": [proof]}}
    endpoint = meta["credential_endpoint"]
    if dpop:
        # The bound token as a bearer token: refused, with a DPoP challenge (section 7.2).
        bearer = requests.post(endpoint, json=cred_req, headers={"Authorization": f"Bearer {access}"}, timeout=10)
        if bearer.status_code != 401 or not bearer.headers.get("WWW-Authenticate", "").startswith("DPoP"):
            fail(f"the DPoP-bound token was not refused as a bearer token: {bearer.status_code} {bearer.text}")
        report["bearer_refused"] = {"status": bearer.status_code, "error": error_of(bearer), "code": error_of(bearer, "code")}
        dpop.heard(bearer)
        sent = {}

        def credential_request():
            sent["proof"] = dpop.proof("POST", endpoint, access)
            return requests.post(endpoint, json=cred_req, headers={"Authorization": f"DPoP {access}", "DPoP": sent["proof"]}, timeout=10)

        r = dpop.send(endpoint, credential_request)
    else:
        r = requests.post(endpoint, json=cred_req, headers={"Authorization": f"Bearer {access}"}, timeout=10)
    if r.status_code != 200:
        fail(f"credential: {r.status_code} {r.text}")
    sd_jwt = r.json()["credentials"][0]["credential"]
    notification_id = r.json().get("notification_id")
    if dpop:
        # The same proof again: a replay, refused (section 11.1).
        replay = requests.post(endpoint, json=cred_req, headers={"Authorization": f"DPoP {access}", "DPoP": sent["proof"]}, timeout=10)
        challenge = replay.headers.get("WWW-Authenticate", "")
        if replay.status_code != 401 or not challenge.startswith("DPoP"):
            fail(f"a replayed DPoP proof was not refused: {replay.status_code} {replay.text}")
        report["replay_refused"] = {"status": replay.status_code, "error": error_of(replay), "code": error_of(replay, "code")}
        dpop.heard(replay)

    parts = sd_jwt.split("~")
    jwt, disclosures = parts[0], [d for d in parts[1:-1] if d]
    h64, p64, s64 = jwt.split(".")
    head, body = json.loads(unb64u(h64)), json.loads(unb64u(p64))
    if head.get("typ") != "dc+sd-jwt" or head.get("alg") != "EdDSA":
        fail(f"unexpected header {head}")
    if body.get("vct") != conf["vct"]:
        fail("vct differs from the configuration")
    issuer_key = resolve_key(head["kid"], body["iat"])
    try:
        issuer_key.verify(unb64u(s64), f"{h64}.{p64}".encode())
    except Exception:
        fail("the issuer signature does not verify with the key from the issuer's DID")
    if body["cnf"]["jwk"]["x"] != jwk["x"]:
        fail("the credential is not bound to this wallet's key")

    digests = {}
    for d in disclosures:
        digests[b64u(hashlib.sha256(d.encode()).digest())] = json.loads(unb64u(d))

    def expand(v):
        if isinstance(v, dict):
            out = {k: expand(x) for k, x in v.items() if k != "_sd" and k != "_sd_alg"}
            for dg in v.get("_sd", []):
                if dg in digests:
                    _, name, value = digests.pop(dg)
                    out[name] = expand(value)
            return out
        if isinstance(v, list):
            out = []
            for x in v:
                if isinstance(x, dict) and list(x) == ["..."]:
                    if x["..."] in digests:
                        out.append(expand(digests.pop(x["..."])[1]))
                else:
                    out.append(expand(x))
            return out
        return v

    claims = expand(body)
    if digests:
        fail("a disclosure is not referenced by the signed payload")
    if store is not None:
        store["credentials"].append({"vct": body["vct"], "sd_jwt": sd_jwt})
        with open(store_path, "w") as f:
            json.dump(store, f)
    out = {"vct": body["vct"], "iss": body["iss"], "claims": claims}
    if dpop:
        if not meta.get("notification_endpoint") or not notification_id:
            fail("no notification endpoint or notification_id")
        note_url = meta["notification_endpoint"]
        note = {"notification_id": notification_id, "event": "credential_accepted"}
        n = dpop.send(note_url, lambda: requests.post(note_url, json=note, headers={"Authorization": f"DPoP {access}", "DPoP": dpop.proof("POST", note_url, access)}, timeout=10))
        if n.status_code // 100 != 2:
            fail(f"notification: {n.status_code} {n.text}")
        report["notification"] = n.status_code
        out["dpop"] = report
    print(json.dumps(out))


if __name__ == "__main__":
    main()
