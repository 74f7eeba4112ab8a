#!/usr/bin/env python3
"""An independent OpenID4VCI 1.0 issuer and OpenID4VP 1.0 verifier, written from the
specifications only (Python standard library HTTP server, `cryptography`; no bizcred code), used
to check that the bizcred wallet interoperates with services it was not written with.

Usage: oid4_services.py <port> <credential FILE>

The credential file (JSON) gives `vct` and `claims`. On start the service prints one JSON line:
`offer_uri` (an `openid-credential-offer://` URI with `credential_offer_uri`), `tx_code` and
`request_uri` (an `openid4vp://` URI). Both roles sign with Ed25519 keys named by did:jwk.

Issuer: credential issuer and authorization server metadata, pre-authorized code with a
transaction code (single use), `nonce` endpoint, credential endpoint that checks the
`openid4vci-proof+jwt` key proof (EdDSA or ES256, aud, nonce) and returns an SD-JWT VC bound to
the proof's key, every claim selectively disclosable, with two decoy digests.

Verifier: a signed request object (`oauth-authz-req+jwt`, client_id with the
`decentralized_identifier:` prefix) asking by DCQL for two claims of that `vct`; a `direct_post`
response endpoint that verifies the presentation (issuer signature, digests, key-binding JWT:
typ, signature by the `cnf` key, aud, nonce, iat, sd_hash) and records which claims were
disclosed. `GET /result` returns the verdict (404 until a response arrived).
"""
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oid4vci_wallet import b64u, unb64u  # noqa: E402

PRE_AUTH = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
REQUESTED = ["business_number", "legal_name"]


def rand() -> str:
    return b64u(os.urandom(16))


def sign_jwt(header: dict, payload: dict, key: Ed25519PrivateKey) -> str:
    h = b64u(json.dumps(header).encode())
    p = b64u(json.dumps(payload, ensure_ascii=False).encode())
    return f"{h}.{p}.{b64u(key.sign(f'{h}.{p}'.encode()))}"


def did_jwk(key: Ed25519PrivateKey) -> str:
    x = b64u(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    return "did:jwk:" + b64u(json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}).encode())


class Invalid(Exception):
    pass


def verify_jwt(jwt: str, jwk: dict) -> tuple:
    """Verifies a compact JWS with a public JWK (Ed25519 or P-256); returns (header, payload)."""
    try:
        h64, p64, s64 = jwt.split(".")
        header, payload, sig = json.loads(unb64u(h64)), json.loads(unb64u(p64)), unb64u(s64)
    except ValueError as e:
        raise Invalid(f"malformed JWT: {e}")
    msg = f"{h64}.{p64}".encode()
    try:
        if header.get("alg") == "EdDSA" and jwk.get("crv") == "Ed25519":
            Ed25519PublicKey.from_public_bytes(unb64u(jwk["x"])).verify(sig, msg)
        elif header.get("alg") == "ES256" and jwk.get("crv") == "P-256" and len(sig) == 64:
            pub = ec.EllipticCurvePublicNumbers(
                int.from_bytes(unb64u(jwk["x"]), "big"), int.from_bytes(unb64u(jwk["y"]), "big"), ec.SECP256R1()
            ).public_key()
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))
        else:
            raise Invalid(f"unsupported alg {header.get('alg')} for this key")
    except InvalidSignature:
        raise Invalid("bad signature")
    return header, payload


class Services:
    def __init__(self, base: str, vct: str, claims: dict):
        self.base, self.vct, self.claims = base, vct, claims
        self.lock = threading.Lock()
        self.issuer_key = Ed25519PrivateKey.generate()
        self.issuer_did = did_jwk(self.issuer_key)
        self.verifier_key = Ed25519PrivateKey.generate()
        self.client_id = "decentralized_identifier:" + did_jwk(self.verifier_key)
        self.code, self.tx_code = rand(), "%06d" % (int.from_bytes(os.urandom(4), "big") % 1000000)
        self.tokens, self.nonces = set(), set()
        self.vp_nonce, self.state = rand(), rand()
        self.result = None
        self.answered = False

    def offer(self):
        return {
            "credential_issuer": self.base,
            "credential_configuration_ids": ["bizcred_credential"],
            "grants": {PRE_AUTH: {"pre-authorized_code": self.code, "tx_code": {"input_mode": "numeric", "length": 6}}},
        }

    def issuer_metadata(self):
        return {
            "credential_issuer": self.base,
            "credential_endpoint": self.base + "/credential",
            "nonce_endpoint": self.base + "/nonce",
            "display": [{"name": "Independent test issuer", "locale": "en-CA"}],
            "credential_configurations_supported": {
                "bizcred_credential": {
                    "format": "dc+sd-jwt",
                    "vct": self.vct,
                    "cryptographic_binding_methods_supported": ["jwk"],
                    "credential_signing_alg_values_supported": ["EdDSA"],
                    "proof_types_supported": {"jwt": {"proof_signing_alg_values_supported": ["EdDSA", "ES256"]}},
                }
            },
        }

    def token(self, form):
        with self.lock:
            if form.get("grant_type") != PRE_AUTH:
                return 400, {"error": "unsupported_grant_type"}
            if not self.code or form.get("pre-authorized_code") != self.code or form.get("tx_code") != self.tx_code:
                return 400, {"error": "invalid_grant"}
            self.code = None  # single use
            t = rand()
            self.tokens.add(t)
            return 200, {"access_token": t, "token_type": "Bearer", "expires_in": 300}

    def nonce(self):
        n = rand()
        with self.lock:
            self.nonces.add(n)
        return 200, {"c_nonce": n}

    def credential(self, auth, body):
        with self.lock:
            token = auth[7:] if auth.startswith("Bearer ") else None
            if token not in self.tokens:
                return 401, {"error": "invalid_token"}
            self.tokens.discard(token)
        if body.get("credential_configuration_id") != "bizcred_credential":
            return 400, {"error": "unknown_credential_configuration"}
        proofs = body.get("proofs", {}).get("jwt", [])
        if len(proofs) != 1:
            return 400, {"error": "invalid_proof", "error_description": "one jwt proof expected"}
        try:
            header = json.loads(unb64u(proofs[0].split(".")[0]))
            if header.get("typ") != "openid4vci-proof+jwt" or "jwk" not in header:
                raise Invalid("proof typ or jwk missing")
            _, payload = verify_jwt(proofs[0], header["jwk"])
            if payload.get("aud") != self.base:
                raise Invalid("proof aud is not this issuer")
            with self.lock:
                if payload.get("nonce") not in self.nonces:
                    return 400, {"error": "invalid_nonce"}
                self.nonces.discard(payload["nonce"])
        except Invalid as e:
            return 400, {"error": "invalid_proof", "error_description": str(e)}
        jwk = {k: v for k, v in header["jwk"].items() if k in ("kty", "crv", "x", "y")}
        disclosures = [b64u(json.dumps([rand(), k, v], ensure_ascii=False).encode()) for k, v in self.claims.items()]
        sd = [b64u(hashlib.sha256(d.encode()).digest()) for d in disclosures] + [b64u(os.urandom(32)) for _ in range(2)]
        now = int(time.time())
        payload = {
            "iss": self.issuer_did,
            "iat": now,
            "exp": now + 365 * 86400,
            "vct": self.vct,
            "cnf": {"jwk": jwk},
            "_sd_alg": "sha-256",
            "_sd": sorted(sd),
        }
        jwt = sign_jwt({"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": self.issuer_did + "#0"}, payload, self.issuer_key)
        return 200, {"credentials": [{"credential": jwt + "~" + "".join(d + "~" for d in disclosures)}]}

    def request_object(self):
        now = int(time.time())
        claims = {
            "client_id": self.client_id,
            "response_type": "vp_token",
            "response_mode": "direct_post",
            "response_uri": self.base + "/response",
            "nonce": self.vp_nonce,
            "state": self.state,
            "dcql_query": {"credentials": [{
                "id": "credential",
                "format": "dc+sd-jwt",
                "meta": {"vct_values": [self.vct]},
                "claims": [{"path": [c]} for c in REQUESTED],
            }]},
            "client_metadata": {"vp_formats_supported": {"dc+sd-jwt": {"sd-jwt_alg_values": ["EdDSA"], "kb-jwt_alg_values": ["EdDSA", "ES256"]}}},
            "aud": "https://self-issued.me/v2",
            "iat": now,
            "exp": now + 600,
        }
        kid = self.client_id[len("decentralized_identifier:"):] + "#0"
        return sign_jwt({"alg": "EdDSA", "typ": "oauth-authz-req+jwt", "kid": kid}, claims, self.verifier_key)

    def check_presentation(self, text: str) -> dict:
        parts = text.split("~")
        if len(parts) < 3:
            raise Invalid("not an SD-JWT with a key-binding JWT")
        issuer_jwt, disclosures, kb = parts[0], parts[1:-1], parts[-1]
        issuer_jwk = json.loads(unb64u(self.issuer_did[len("did:jwk:"):]))
        header, payload = verify_jwt(issuer_jwt, issuer_jwk)
        if header.get("typ") != "dc+sd-jwt" or payload.get("iss") != self.issuer_did or payload.get("vct") != self.vct:
            raise Invalid("not this issuer's credential")
        digests = set(payload.get("_sd", []))
        disclosed = {}
        for d in disclosures:
            dg = b64u(hashlib.sha256(d.encode()).digest())
            if dg not in digests:
                raise Invalid("a disclosure is not referenced by the signed payload")
            digests.discard(dg)
            _, name, value = json.loads(unb64u(d))
            disclosed[name] = value
        kb_header, kb_payload = verify_jwt(kb, payload["cnf"]["jwk"])
        if kb_header.get("typ") != "kb+jwt":
            raise Invalid("key-binding JWT typ")
        if kb_payload.get("aud") != self.client_id or kb_payload.get("nonce") != self.vp_nonce:
            raise Invalid("key-binding JWT aud or nonce")
        if abs(kb_payload.get("iat", 0) - time.time()) > 300:
            raise Invalid("key-binding JWT iat")
        sd_hash = b64u(hashlib.sha256(text[: -len(kb)].encode()).digest())
        if kb_payload.get("sd_hash") != sd_hash:
            raise Invalid("sd_hash")
        return disclosed

    def response(self, form):
        if self.answered or form.get("state") != self.state:
            return 400, {"error": "invalid_request", "error_description": "unknown state"}
        try:
            vp = json.loads(form.get("vp_token", ""))
            presentations = vp["credential"]
            if not isinstance(presentations, list) or len(presentations) != 1:
                raise Invalid("one presentation expected")
            disclosed = self.check_presentation(presentations[0])
            result = {"verdict": "valid", "disclosed": disclosed}
        except (Invalid, ValueError, KeyError, TypeError) as e:
            result = {"verdict": "invalid", "reason": str(e)}
        with self.lock:
            self.answered = True  # a request is answered once
            self.result = result
        return 200, {}


def handler_for(s: Services):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            n = int(self.headers.get("Content-Length", "0"))
            if n > 256 * 1024:
                raise ValueError("too large")
            return self.rfile.read(n).decode()

        def form(self):
            return {k: v[0] for k, v in urllib.parse.parse_qs(self.body()).items()}

        def do_GET(self):
            if self.path == "/.well-known/openid-credential-issuer":
                self.reply(200, s.issuer_metadata())
            elif self.path == "/.well-known/oauth-authorization-server":
                self.reply(200, {"issuer": s.base, "token_endpoint": s.base + "/token",
                                 "pre-authorized_grant_anonymous_access_supported": True})
            elif self.path == "/offer":
                self.reply(200, s.offer())
            elif self.path == "/request" and not s.answered:
                self.reply(200, s.request_object(), "application/oauth-authz-req+jwt")
            elif self.path == "/result":
                self.reply(200, s.result) if s.result else self.reply(404, {"error": "no result yet"})
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self):
            if self.path == "/token":
                self.reply(*s.token(self.form()))
            elif self.path == "/nonce":
                self.reply(*s.nonce())
            elif self.path == "/credential":
                try:
                    body = json.loads(self.body())
                except ValueError:
                    return self.reply(400, {"error": "invalid_credential_request"})
                self.reply(*s.credential(self.headers.get("Authorization", ""), body))
            elif self.path == "/response":
                self.reply(*s.response(self.form()))
            else:
                self.reply(404, {"error": "not_found"})

    return Handler


def main():
    port = int(sys.argv[1])
    with open(sys.argv[2]) as f:
        cred = json.load(f)
    base = f"http://localhost:{port}"
    s = Services(base, cred["vct"], cred["claims"])
    server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(s))
    offer_uri = "openid-credential-offer://?" + urllib.parse.urlencode({"credential_offer_uri": base + "/offer"})
    request_uri = "openid4vp://?" + urllib.parse.urlencode(
        {"client_id": s.client_id, "request_uri": base + "/request", "request_uri_method": "get"})
    print(json.dumps({"offer_uri": offer_uri, "tx_code": s.tx_code, "request_uri": request_uri}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
