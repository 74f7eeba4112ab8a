#!/usr/bin/env python3
"""An independent check of SD-JWT VC issuer signatures by a verifier that knows only the issuer's
CURRENT DID document, written from the did:webvh 1.0 specification and RFC 7515 only (Python,
`cryptography` and `requests`; no bizcred code).

Usage: current_did_document.py <store FILE> [--now UNIX_SECONDS]

The store is the one `oid4vci_wallet.py --store` writes. For each credential it does what a
common resolver does when a verifier resolves the DID in the issuer-signed JWT's `kid` without
`versionId`, `versionTime` or `versionNumber`: it fetches the DID log (`did.jsonl`) from the
location the did:webvh spec derives from the DID, takes the state of the LAST entry (the current
DID document), refuses a deactivated DID, requires `kid` to be listed in `assertionMethod`
(absolute or relative id) and to name an Ed25519 `Multikey` in `verificationMethod`, checks the
EdDSA signature and that the credential has not expired at `now`. It deliberately ignores the
DID's history and any trust registry: it cannot know when a key was declared compromised, only
whether the current document still lists it.

Prints {"results": [{"kid", "iat", "accepted", "reason"}, ...]} in the store's order; exit 0.
"""
import base64
import json
import sys
import time
import urllib.parse

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def unb64u(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b58decode(s: str) -> bytes:
    n = 0
    for c in s:
        n = n * 58 + B58.index(c)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * (len(s) - len(s.lstrip("1"))) + raw


def did_log_url(did: str) -> str:
    # did:webvh:<scid>:<domain>[:path...] -> https://domain[/path]/did.jsonl (http on localhost)
    parts = did.split(":")[3:]
    host = urllib.parse.unquote(parts[0])
    scheme = "http" if host.startswith("localhost") or host.startswith("127.") else "https"
    if len(parts) == 1:
        return f"{scheme}://{host}/.well-known/did.jsonl"
    return f"{scheme}://{host}/" + "/".join(parts[1:]) + "/did.jsonl"


def current_document(did: str) -> dict:
    text = requests.get(did_log_url(did), timeout=10).text
    entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not entries:
        raise ValueError("empty DID log")
    deactivated = False
    for e in entries:
        # Parameters carry over from entry to entry; only the latest value counts.
        if "deactivated" in e.get("parameters", {}):
            deactivated = bool(e["parameters"]["deactivated"])
    if deactivated:
        raise ValueError("the DID is deactivated")
    return entries[-1]["state"]


def absolute(did: str, ref: str) -> str:
    return did + ref if ref.startswith("#") else ref


def check(sd_jwt: str, now: int) -> dict:
    jwt = sd_jwt.split("~")[0]
    h64, p64, s64 = jwt.split(".")
    head, body = json.loads(unb64u(h64)), json.loads(unb64u(p64))
    kid = head.get("kid", "")
    out = {"kid": kid, "iat": body.get("iat"), "accepted": False}
    if head.get("alg") != "EdDSA":
        out["reason"] = "unsupported alg"
        return out
    did = kid.split("#")[0]
    if did != body.get("iss"):
        out["reason"] = "kid is not a key of the issuer"
        return out
    try:
        doc = current_document(did)
    except Exception as e:  # noqa: BLE001 - any resolution failure refuses
        out["reason"] = f"resolution failed: {e}"
        return out
    if doc.get("id") != did:
        out["reason"] = "the DID document is not the issuer's"
        return out
    listed = []
    for m in doc.get("assertionMethod", []):
        listed.append(absolute(did, m if isinstance(m, str) else m.get("id", "")))
    if kid not in listed:
        out["reason"] = "kid is not listed in assertionMethod of the current DID document"
        return out
    vm = next((v for v in doc.get("verificationMethod", []) if absolute(did, v.get("id", "")) == kid), None)
    if vm is None or vm.get("type") != "Multikey" or not vm.get("publicKeyMultibase", "").startswith("z"):
        out["reason"] = "kid names no Multikey verification method"
        return out
    mk = b58decode(vm["publicKeyMultibase"][1:])
    if mk[:2] != b"\xed\x01" or len(mk) != 34:
        out["reason"] = "not an Ed25519 multikey"
        return out
    try:
        Ed25519PublicKey.from_public_bytes(mk[2:]).verify(unb64u(s64), f"{h64}.{p64}".encode())
    except InvalidSignature:
        out["reason"] = "the signature does not verify"
        return out
    if "exp" in body and body["exp"] <= now:
        out["reason"] = "expired"
        return out
    out["accepted"] = True
    return out


def main():
    args = sys.argv[1:]
    now = int(time.time())
    if "--now" in args:
        now = int(args[args.index("--now") + 1])
    with open(args[0]) as f:
        store = json.load(f)
    print(json.dumps({"results": [check(c["sd_jwt"], now) for c in store["credentials"]]}))


if __name__ == "__main__":
    main()
