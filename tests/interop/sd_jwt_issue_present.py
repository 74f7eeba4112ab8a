#!/usr/bin/env python3
"""An independent SD-JWT VC issuer and holder, written from RFC 9901 and the SD-JWT VC draft only
(Python, `cryptography`; no bizcred code), used to check that the bizcred verifier treats SD-JWTs
it did not produce the same way as its own.

Usage: sd_jwt_issue_present.py <input FILE>

The input (JSON) gives the verifier's `aud` and `nonce`, the holder's Ed25519 key and, per
credential, the issuer DID, `kid`, Ed25519 key (raw, hex), `vct`, claims, status reference,
`iat`/`exp`, and which top-level claims to disclose. Every claim is made selectively disclosable
(objects as a whole), two decoy digests are added, the payload is signed (`dc+sd-jwt`, EdDSA),
the requested disclosures are kept and a `kb+jwt` key-binding JWT (aud, nonce, iat, sd_hash) is
appended. Prints a DCQL `vp_token` (query id -> [presentation]) on stdout. With `--tamper` the last
credential's first kept disclosure carries a changed value (so its digest is no longer signed).
"""
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oid4vci_wallet import b64u, unb64u  # noqa: E402


def jws(header: dict, payload: dict, key: Ed25519PrivateKey) -> str:
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    p = b64u(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{h}.{p}.{b64u(key.sign(f'{h}.{p}'.encode()))}"


def digest(disclosure: str) -> str:
    return b64u(hashlib.sha256(disclosure.encode()).digest())


def disclosure(name: str, value) -> str:
    return b64u(json.dumps([b64u(os.urandom(16)), name, value], ensure_ascii=False).encode())


def main():
    with open(sys.argv[1]) as f:
        inp = json.load(f)
    tamper = "--tamper" in sys.argv[2:]
    holder = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(inp["holder_key"]))
    holder_x = b64u(holder.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    vp_token = {}
    for n, c in enumerate(inp["credentials"]):
        issuer_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(c["key"]))
        disclosures = {name: disclosure(name, value) for name, value in c["claims"].items()}
        sd = [digest(d) for d in disclosures.values()] + [b64u(os.urandom(32)) for _ in range(2)]
        payload = {
            "iss": c["issuer"],
            "iat": c["iat"],
            "exp": c["exp"],
            "vct": c["vct"],
            "cnf": {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": holder_x}},
            "status": {"status_list": {"idx": c["status"]["idx"], "uri": c["status"]["uri"]}},
            "_sd_alg": "sha-256",
            "_sd": sorted(sd),
        }
        issued = jws({"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": c["kid"]}, payload, issuer_key)
        kept = [disclosures[name] for name in c["disclose"]]
        if tamper and n == len(inp["credentials"]) - 1:
            salt, name, _ = json.loads(unb64u(kept[0]))
            kept[0] = b64u(json.dumps([salt, name, "Tampered Holdings Ltd."]).encode())
        presentation = issued + "~" + "".join(d + "~" for d in kept)
        kb = jws(
            {"alg": "EdDSA", "typ": "kb+jwt"},
            {"iat": inp["iat"], "aud": inp["aud"], "nonce": inp["nonce"], "sd_hash": digest(presentation)},
            holder,
        )
        vp_token[c["id"]] = [presentation + kb]
    print(json.dumps(vp_token))


if __name__ == "__main__":
    main()
