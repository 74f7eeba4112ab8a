#!/usr/bin/env python3
"""An independent OpenID4VP 1.0 wallet for SD-JWT VCs, written from the specifications only
(Python, `cryptography` and `requests`; no bizcred code), used to check that the bizcred verifier
accepts presentations it did not produce.

Usage: oid4vp_wallet.py <openid4vp authorization request URI> <store FILE>

The store is the one `oid4vci_wallet.py --store` fills. It fetches the request object from
`request_uri`, checks its `typ`, that `client_id` uses the `decentralized_identifier:` prefix with
a did:jwk, and the signature with that DID's key; then, for every DCQL credential query, picks a
stored credential of an accepted `vct`, discloses exactly the requested claim paths (whole values,
nested disclosures included), checks `values` constraints, appends a key-binding JWT
(`kb+jwt`, aud = client_id, the request's nonce, sd_hash over the presentation) and posts
`vp_token` and `state` with `direct_post` to `response_uri`. Prints the verifier's answer as JSON.
Exit 0 when the verifier took the response (HTTP 200), 1 otherwise.
"""
import hashlib
import json
import os
import sys
import time
import urllib.parse

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oid4vci_wallet import b64u, unb64u, fail  # noqa: E402

DID_PREFIX = "decentralized_identifier:"
MISSING = object()


def request_key(client_id: str, kid: str) -> Ed25519PublicKey:
    if not client_id.startswith(DID_PREFIX):
        fail("this wallet only accepts verifiers identified by a DID")
    did = client_id[len(DID_PREFIX):]
    if kid.split("#")[0] != did:
        fail("the request object is signed with a key of another DID than client_id")
    if not did.startswith("did:jwk:"):
        fail("this wallet resolves did:jwk verifier identifiers only")
    jwk = json.loads(unb64u(did[len("did:jwk:"):]))
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        fail("the verifier's key is not Ed25519")
    return Ed25519PublicKey.from_public_bytes(unb64u(jwk["x"]))


def fetch_request(uri: str) -> dict:
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    client_id = q["client_id"][0]
    method = q.get("request_uri_method", ["get"])[0]
    if method != "get":
        fail("request_uri_method post is not supported by this wallet")
    r = requests.get(q["request_uri"][0], timeout=10)
    if r.status_code != 200:
        fail(f"request_uri: {r.status_code} {r.text}")
    jwt = r.text.strip()
    h64, p64, s64 = jwt.split(".")
    head, claims = json.loads(unb64u(h64)), json.loads(unb64u(p64))
    if head.get("typ") != "oauth-authz-req+jwt" or head.get("alg") != "EdDSA":
        fail(f"unexpected request object header {head}")
    try:
        request_key(client_id, head["kid"]).verify(unb64u(s64), f"{h64}.{p64}".encode())
    except Exception as e:  # InvalidSignature or a malformed key
        fail(f"the request object signature does not verify: {e!r}")
    if claims.get("client_id") != client_id:
        fail("client_id in the request object differs from the URI's")
    if claims.get("response_type") != "vp_token" or claims.get("response_mode") != "direct_post":
        fail("only response_type vp_token with response_mode direct_post is supported")
    return claims


class Credential:
    def __init__(self, sd_jwt: str):
        parts = sd_jwt.split("~")
        self.jwt = parts[0]
        self.disclosures = [d for d in parts[1:-1] if d]
        self.payload = json.loads(unb64u(self.jwt.split(".")[1]))
        self.by_digest = {b64u(hashlib.sha256(d.encode()).digest()): (d, json.loads(unb64u(d))) for d in self.disclosures}

    def member(self, node, name):
        """The value of `name` in `node` and the disclosure that reveals it (None if plain)."""
        if name in node and name not in ("_sd", "_sd_alg"):
            return node[name], None
        for dg in node.get("_sd", []):
            d = self.by_digest.get(dg)
            if d and len(d[1]) == 3 and d[1][1] == name:
                return d[1][2], d[0]
        return MISSING, None

    def elements(self, arr):
        """The elements of `arr` with the disclosure that reveals each (None if plain)."""
        for x in arr:
            if isinstance(x, dict) and list(x) == ["..."]:
                d = self.by_digest.get(x["..."])
                if d:
                    yield d[1][1], d[0]
            else:
                yield x, None

    def everything_in(self, value, chosen):
        if isinstance(value, dict):
            for k in list(value):
                v, d = self.member(value, k)
                if v is not MISSING:
                    self.everything_in(v, chosen)
            for dg in value.get("_sd", []):
                d = self.by_digest.get(dg)
                if d and len(d[1]) == 3:
                    chosen.add(d[0])
                    self.everything_in(d[1][2], chosen)
        elif isinstance(value, list):
            for v, d in self.elements(value):
                if d:
                    chosen.add(d)
                self.everything_in(v, chosen)

    def select(self, node, path, chosen):
        """Adds to `chosen` what reveals `path`; returns the values found there."""
        if not path:
            self.everything_in(node, chosen)
            return [node]
        head, rest = path[0], path[1:]
        if isinstance(head, str):
            if not isinstance(node, dict):
                return []
            v, d = self.member(node, head)
            if v is MISSING:
                return []
            if d:
                chosen.add(d)
            return self.select(v, rest, chosen)
        if not isinstance(node, list):
            return []
        found = []
        for i, (v, d) in enumerate(self.elements(node)):
            if head is None or head == i:
                if d:
                    chosen.add(d)
                found += self.select(v, rest, chosen)
        return found

    def present(self, query) -> str:
        chosen = set()
        for cl in query.get("claims", []):
            values = self.select(self.payload, cl["path"], chosen)
            if not values:
                return None
            if "values" in cl and not any(v in cl["values"] for v in values):
                return None
        kept = [d for d in self.disclosures if d in chosen]
        return self.jwt + "~" + "".join(d + "~" for d in kept)


def main():
    uri, store_path = sys.argv[1], sys.argv[2]
    with open(store_path) as f:
        store = json.load(f)
    key = Ed25519PrivateKey.from_private_bytes(unb64u(store["key"]))
    req = fetch_request(uri)
    vp_token = {}
    for query in req["dcql_query"]["credentials"]:
        if query.get("format") != "dc+sd-jwt":
            fail(f"query {query['id']}: format {query.get('format')} is not supported")
        vcts = query.get("meta", {}).get("vct_values", [])
        presented = None
        for c in store["credentials"]:
            if c["vct"] in vcts:
                presented = Credential(c["sd_jwt"]).present(query)
                if presented:
                    break
        if not presented:
            fail(f"no stored credential answers query {query['id']}")
        sd_hash = b64u(hashlib.sha256(presented.encode()).digest())
        head = b64u(json.dumps({"typ": "kb+jwt", "alg": "EdDSA"}).encode())
        body = b64u(json.dumps({"iat": int(time.time()), "aud": req["client_id"], "nonce": req["nonce"], "sd_hash": sd_hash}).encode())
        kb = f"{head}.{body}.{b64u(key.sign(f'{head}.{body}'.encode()))}"
        vp_token[query["id"]] = [presented + kb]
    r = requests.post(req["response_uri"], data={"vp_token": json.dumps(vp_token), "state": req["state"]}, timeout=10)
    try:
        answer = r.json()
    except ValueError:
        answer = r.text
    print(json.dumps({"status": r.status_code, "answer": answer, "disclosed": {k: v[0].count("~") - 1 for k, v in vp_token.items()}}))
    sys.exit(0 if r.status_code == 200 else 1)


if __name__ == "__main__":
    main()
