//! Known-answer tests for the formats that were only checked against themselves: RFC 9162
//! Merkle trees, C2SP signed notes, ES256/EdDSA JWS (RFC 7515 A.3, RFC 7520, RFC 8037) and the
//! W3C `eddsa-jcs-2022` cryptosuite. One named test per vector, so a failure names its vector.
//!
//! Values that are published only inside specifications or other projects' test files are
//! written out here, each with its source; every one of them was re-derived independently with
//! Python (`hashlib`, and `cryptography` 48 for Ed25519/P-256) before it was written down.
//! File vectors are read in place from `../shared/vectors` (or `$BIZCRED_VECTORS`); where they
//! are absent the tests say so loudly, and under `CI=true` their absence is a failure.

mod common;
use common::{json, read, vectors};

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 9162 Merkle trees against the RFC 6962 reference data that Certificate Transparency
/// implementations share: the eight leaves `""`, `00`, `10`, `2021`, `3031`, `40414243`,
/// `5051525354555657`, `606162636465666768696a6b6c6d6e6f`, the root of every tree size 1..8,
/// and the published inclusion and consistency proofs.
///
/// Source: transparency-dev/merkle, `proof/verify_test.go` (`roots`, `leaves`,
/// `inclusionProofs`, `consistencyProofs`; the same data as google/certificate-transparency's
/// `merkle_tree_test.cc`), and `rfc6962/rfc6962_test.go` for the single hash values.
mod merkle {
    use super::{to_hex, unhex};
    use bizcred_core::trust::merkle::{
        consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root,
        verify_consistency, verify_inclusion, Hash, ProofError,
    };

    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// `roots[n-1]` is the published root of the tree of the first `n` leaves.
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn h(s: &str) -> Hash {
        unhex(s).try_into().expect("a 32-byte hash")
    }

    fn hashes(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|s| h(s)).collect()
    }

    fn leaves(n: usize) -> Vec<Hash> {
        LEAVES[..n].iter().map(|l| leaf_hash(&unhex(l))).collect()
    }

    fn published_root(n: usize) -> Hash {
        h(ROOTS[n - 1])
    }

    fn flip(proof: &[Hash], i: usize) -> Vec<Hash> {
        let mut p = proof.to_vec();
        p[i][0] ^= 8;
        p
    }

    /// The tree of the first `n` leaves has the published root.
    fn check_root(n: usize) {
        assert_eq!(
            to_hex(&root(&leaves(n))),
            ROOTS[n - 1],
            "root of the {n}-leaf tree"
        );
    }

    /// Our generator produces the published inclusion proof of leaf `index` (0-based) in the
    /// tree of `size` leaves, the verifier accepts it against the published root, and every
    /// probe of transparency-dev's `corruptInclusionProof` is refused.
    fn check_inclusion(index: usize, size: usize, published: &[&str]) {
        let l = leaves(size);
        let want = hashes(published);
        let (i, n) = (index as u64, size as u64);
        let r = published_root(size);
        assert_eq!(
            inclusion_proof(index, &l).expect("in range"),
            want,
            "generated proof"
        );
        assert_eq!(verify_inclusion(i, n, &l[index], &want, &r), Ok(()));

        for k in 0..want.len() {
            assert_eq!(
                verify_inclusion(i, n, &l[index], &flip(&want, k), &r),
                Err(ProofError::Mismatch),
                "proof[{k}] with a flipped bit"
            );
        }
        let wrong_leaf = leaf_hash(b"WrongLeaf");
        assert_eq!(
            verify_inclusion(i, n, &wrong_leaf, &want, &r),
            Err(ProofError::Mismatch),
            "wrong leaf"
        );
        assert_eq!(
            verify_inclusion(i, n, &l[index], &want, &empty_root()),
            Err(ProofError::Mismatch),
            "empty-tree root"
        );
        let mut trailing = want.clone();
        trailing.push(r);
        assert_eq!(
            verify_inclusion(i, n, &l[index], &trailing, &r),
            Err(ProofError::Length),
            "trailing root"
        );
        let mut preceding = vec![r];
        preceding.extend(want.iter().copied());
        assert_eq!(
            verify_inclusion(i, n, &l[index], &preceding, &r),
            Err(ProofError::Length),
            "preceding root"
        );
        if !want.is_empty() {
            assert_eq!(
                verify_inclusion(i, n, &l[index], &want[..want.len() - 1], &r),
                Err(ProofError::Length),
                "removed component"
            );
        }
        // Wrong index or tree size: refused, whatever the reason.
        for (bad_i, bad_n, what) in [
            (i.wrapping_sub(1), n, "index - 1"),
            (i + 1, n, "index + 1"),
            (i ^ 2, n, "index ^ 2"),
            (i, n * 2, "size * 2"),
            (i, n / 2, "size / 2"),
        ] {
            assert!(
                verify_inclusion(bad_i, bad_n, &l[index], &want, &r).is_err(),
                "{what} must not verify"
            );
        }
    }

    /// Our generator produces the published consistency proof between the trees of `m` and
    /// `n` leaves, the verifier accepts it against the published roots, and every probe of
    /// transparency-dev's `corruptConsistencyProof` is refused.
    fn check_consistency(m: usize, n: usize, published: &[&str]) {
        let l = leaves(n);
        let want = hashes(published);
        let (r1, r2) = (published_root(m), published_root(n));
        let (m64, n64) = (m as u64, n as u64);
        assert_eq!(
            consistency_proof(m, &l).expect("in range"),
            want,
            "generated proof"
        );
        assert_eq!(verify_consistency(m64, n64, &r1, &r2, &want), Ok(()));

        for k in 0..want.len() {
            assert_eq!(
                verify_consistency(m64, n64, &r1, &r2, &flip(&want, k)),
                Err(ProofError::Mismatch),
                "proof[{k}] with a flipped bit"
            );
        }
        for (a, b, what) in [
            (&empty_root(), &r2, "wrong root1"),
            (&r1, &empty_root(), "wrong root2"),
            (&r2, &r1, "swapped roots"),
        ] {
            assert_eq!(
                verify_consistency(m64, n64, a, b, &want),
                Err(ProofError::Mismatch),
                "{what}"
            );
        }
        assert_eq!(
            verify_consistency(m64, n64, &r1, &r2, &[]),
            Err(ProofError::Length),
            "empty proof"
        );
        assert_eq!(
            verify_consistency(m64, n64, &r1, &r2, &want[..want.len() - 1]),
            Err(ProofError::Length),
            "truncated proof"
        );
        for extra in [r1, r2] {
            let mut trailing = want.clone();
            trailing.push(extra);
            assert_eq!(
                verify_consistency(m64, n64, &r1, &r2, &trailing),
                Err(ProofError::Length),
                "trailing root"
            );
        }
        for extra in [r1, r2, want[0]] {
            let mut preceding = vec![extra];
            preceding.extend(want.iter().copied());
            assert!(
                verify_consistency(m64, n64, &r1, &r2, &preceding).is_err(),
                "preceding hash must not verify"
            );
        }
        for (a, b, what) in [
            (m64 - 1, n64, "size1 - 1"),
            (m64 + 1, n64, "size1 + 1"),
            (m64 ^ 2, n64, "size1 ^ 2"),
            (m64, n64 * 2, "size2 * 2"),
            (m64, n64 / 2, "size2 / 2"),
        ] {
            assert!(
                verify_consistency(a, b, &r1, &r2, &want).is_err(),
                "{what} must not verify"
            );
        }
    }

    /// rfc6962_test.go "RFC6962 Empty": `SHA-256("")`.
    #[test]
    fn empty_tree_hash() {
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(to_hex(&root(&[])), to_hex(&empty_root()));
    }

    /// rfc6962_test.go "RFC6962 Empty Leaf": `SHA-256(0x00)`, which differs from the empty
    /// tree hash.
    #[test]
    fn empty_leaf_hash() {
        assert_eq!(
            to_hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    /// rfc6962_test.go "RFC6962 Leaf": `SHA-256(0x00 || "L123456")`.
    #[test]
    fn leaf_hash_l123456() {
        assert_eq!(
            to_hex(&leaf_hash(b"L123456")),
            "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
        );
    }

    /// `node_hash` on the first two published leaves is the published root of size 2 (the
    /// 0x01 interior-node prefix over the two 0x00-prefixed leaf hashes), and the order of the
    /// children matters. (rfc6962_test.go's "RFC6962 Node" value hashes 4-byte children, which
    /// our typed 32-byte API cannot take.)
    #[test]
    fn node_hash_of_the_first_two_leaves() {
        let l = leaves(2);
        assert_eq!(to_hex(&node_hash(&l[0], &l[1])), ROOTS[1]);
        assert_ne!(to_hex(&node_hash(&l[1], &l[0])), ROOTS[1]);
    }

    #[test]
    fn root_of_size_1() {
        check_root(1);
    }
    #[test]
    fn root_of_size_2() {
        check_root(2);
    }
    #[test]
    fn root_of_size_3() {
        check_root(3);
    }
    #[test]
    fn root_of_size_4() {
        check_root(4);
    }
    #[test]
    fn root_of_size_5() {
        check_root(5);
    }
    #[test]
    fn root_of_size_6() {
        check_root(6);
    }
    #[test]
    fn root_of_size_7() {
        check_root(7);
    }
    #[test]
    fn root_of_size_8() {
        check_root(8);
    }

    /// verify_test.go `inclusionProofs` {1, 1, nil}: the only leaf of a 1-leaf tree, empty
    /// proof, root = leaf hash.
    #[test]
    fn inclusion_leaf_0_of_1() {
        check_inclusion(0, 1, &[]);
    }

    /// verify_test.go `inclusionProofs` {1, 8, ...} (the Go table is 1-based).
    #[test]
    fn inclusion_leaf_0_of_8() {
        check_inclusion(
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        );
    }

    /// verify_test.go `inclusionProofs` {6, 8, ...}.
    #[test]
    fn inclusion_leaf_5_of_8() {
        check_inclusion(
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        );
    }

    /// verify_test.go `inclusionProofs` {3, 3, ...}.
    #[test]
    fn inclusion_leaf_2_of_3() {
        check_inclusion(
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        );
    }

    /// verify_test.go `inclusionProofs` {2, 5, ...}.
    #[test]
    fn inclusion_leaf_1_of_5() {
        check_inclusion(
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        );
    }

    /// verify_test.go `TestVerifyInclusion` probes {0,0}, {1,0}, {2,1}: an index outside the
    /// tree is refused as out of range.
    #[test]
    fn inclusion_out_of_range() {
        let l = leaves(1);
        for (i, n) in [(0, 0), (1, 0), (2, 1)] {
            assert_eq!(
                verify_inclusion(i, n, &l[0], &[], &published_root(1)),
                Err(ProofError::Range),
                "index {i} in a tree of {n}"
            );
        }
        assert_eq!(inclusion_proof(1, &l), Err(ProofError::Range));
    }

    /// verify_test.go `consistencyProofs` {1, 1, nil}: equal sizes, empty proof, equal roots.
    #[test]
    fn consistency_1_to_1() {
        let r = published_root(1);
        assert_eq!(
            consistency_proof(1, &leaves(1)).expect("in range"),
            Vec::<Hash>::new()
        );
        assert_eq!(verify_consistency(1, 1, &r, &r, &[]), Ok(()));
        // `TestVerifyConsistency`: equal sizes with different roots, or a non-empty proof.
        assert_eq!(
            verify_consistency(1, 1, &r, &published_root(2), &[]),
            Err(ProofError::Mismatch)
        );
        assert_eq!(
            verify_consistency(1, 1, &r, &r, &[empty_root()]),
            Err(ProofError::Length)
        );
        // Time travel to the past is refused.
        assert_eq!(
            verify_consistency(2, 1, &r, &r, &[]),
            Err(ProofError::Range)
        );
    }

    /// verify_test.go `consistencyProofs` {1, 8, ...}.
    #[test]
    fn consistency_1_to_8() {
        check_consistency(
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        );
    }

    /// verify_test.go `consistencyProofs` {6, 8, ...}.
    #[test]
    fn consistency_6_to_8() {
        check_consistency(
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        );
    }

    /// verify_test.go `consistencyProofs` {2, 5, ...}.
    #[test]
    fn consistency_2_to_5() {
        check_consistency(
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        );
    }

    /// verify_test.go `consistencyProofs` {6, 7, ...}.
    #[test]
    fn consistency_6_to_7() {
        check_consistency(
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        );
    }
}

/// C2SP signed notes against golang.org/x/mod/sumdb/note's published known answers
/// (golang/mod, `sumdb/note/note_test.go`: `TestNewVerifier`, `TestSign`, `TestVerifierList`,
/// `TestOpen`), and a tree head signed by sum.golang.org under the Go toolchain's pinned key
/// (`cmd/go/internal/modfetch/key.go`).
mod note {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use bizcred_core::keys::{Algorithm, PublicKey, SecretKey, Signer};
    use bizcred_core::trust::note::{key_id, verifier_key, Checkpoint, NoteError, SignedNote};

    /// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`:
    /// after the algorithm byte 0x01, the Ed25519 seed.
    const PETER_SKEY: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                        then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    /// The Ed25519 public key in a `<name>+<hex id>+<base64(0x01 || key)>` verifier key (the
    /// base64 part may itself hold `+`).
    fn key_of(vkey: &str) -> PublicKey {
        let raw = STANDARD
            .decode(vkey.splitn(3, '+').nth(2).expect("key part"))
            .expect("base64");
        assert_eq!(raw[0], 1, "algorithm byte 0x01 (Ed25519)");
        let bytes: [u8; 32] = raw[1..].try_into().expect("32-byte key");
        PublicKey::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&bytes).expect("point"))
    }

    fn peter_secret() -> SecretKey {
        let raw = STANDARD.decode(PETER_SKEY).expect("base64");
        assert_eq!(raw[0], 1);
        SecretKey::from_bytes(Algorithm::EdDSA, &raw[1..]).expect("seed")
    }

    fn published_note() -> String {
        format!("{TEXT}\n{PETER_SIG}")
    }

    /// TestNewVerifier / TestNewSigner: the PeterNeumann key pair gives the published key hash
    /// `c74f20a3` and verifier key string.
    #[test]
    fn peter_neumann_key_hash_and_verifier_key() {
        let key = peter_secret();
        assert_eq!(key.public_key(), key_of(PETER_VKEY));
        assert_eq!(
            key_id("PeterNeumann", &key.public_key()),
            [0xc7, 0x4f, 0x20, 0xa3]
        );
        assert_eq!(verifier_key("PeterNeumann", &key.public_key()), PETER_VKEY);
    }

    /// TestVerifierList: the EnochRoot verifier key has the published key hash `af0cfe78`.
    #[test]
    fn enoch_root_key_hash_and_verifier_key() {
        let key = key_of(ENOCH_VKEY);
        assert_eq!(key_id("EnochRoot", &key), [0xaf, 0x0c, 0xfe, 0x78]);
        assert_eq!(verifier_key("EnochRoot", &key), ENOCH_VKEY);
    }

    /// TestSign: signing the published text with PeterNeumann's key gives the published note
    /// byte for byte (Ed25519 is deterministic).
    #[test]
    fn peter_neumann_signs_the_published_note() {
        let note = SignedNote::sign(TEXT, "PeterNeumann", &peter_secret()).expect("sign");
        assert_eq!(note, published_note());
    }

    /// TestOpen: the published note verifies with PeterNeumann's verifier key, and its text
    /// and signature are read as published.
    #[test]
    fn peter_neumann_note_verifies() {
        let n = SignedNote::parse(&published_note()).expect("parse");
        assert_eq!(n.text, TEXT);
        assert_eq!(n.signatures.len(), 1);
        assert_eq!(n.signatures[0].name, "PeterNeumann");
        assert_eq!(n.signatures[0].key_id, [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(n.signatures[0].signature.len(), 64);
        assert_eq!(n.verify("PeterNeumann", &key_of(PETER_VKEY)), Ok(()));
    }

    /// TestOpen: with both published signatures, each key verifies its own signature and the
    /// other one is kept but does not count.
    #[test]
    fn peter_and_enoch_cosigned_note() {
        let n = SignedNote::parse(&format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}")).expect("parse");
        assert_eq!(n.signatures.len(), 2);
        assert_eq!(n.signatures[1].name, "EnochRoot");
        assert_eq!(n.signatures[1].key_id, [0xaf, 0x0c, 0xfe, 0x78]);
        assert_eq!(n.verify("PeterNeumann", &key_of(PETER_VKEY)), Ok(()));
        assert_eq!(n.verify("EnochRoot", &key_of(ENOCH_VKEY)), Ok(()));
        // Each key under the other's name: no match.
        assert_eq!(
            n.verify("EnochRoot", &key_of(PETER_VKEY)),
            Err(NoteError::NotSigned("EnochRoot".into()))
        );
    }

    /// A changed byte anywhere the signature covers, or in the signature, or in the key hash
    /// (TestOpen's "ABCD" insertion and its `x08g` → `xxxx` key hash), fails as `NotSigned`.
    #[test]
    fn peter_neumann_changed_byte_is_not_signed() {
        let peter = key_of(PETER_VKEY);
        let not_signed = Err(NoteError::NotSigned("PeterNeumann".into()));
        let published = published_note();
        // One byte of the text.
        let changed_text = published.replacen("cryptography", "cryptographY", 1);
        let n = SignedNote::parse(&changed_text).expect("parse");
        assert_eq!(n.verify("PeterNeumann", &peter), not_signed);
        // One bit of the signature (after the key hash), re-encoded.
        let mut raw = STANDARD
            .decode(PETER_SIG.trim_end().rsplit(' ').next().expect("b64"))
            .expect("base64");
        raw[10] ^= 1;
        let changed_sig = format!("{TEXT}\n\u{2014} PeterNeumann {}\n", STANDARD.encode(&raw));
        let n = SignedNote::parse(&changed_sig).expect("parse");
        assert_eq!(n.verify("PeterNeumann", &peter), not_signed);
        // TestOpen "Invalid signature": ABCD inserted at byte 60 of the signature line.
        let inserted = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        let n = SignedNote::parse(&inserted).expect("parse");
        assert_eq!(n.verify("PeterNeumann", &peter), not_signed);
        // TestOpen "wrong hash": the key hash no longer matches the key.
        let wrong_hash = published.replace("x08g", "xxxx");
        let n = SignedNote::parse(&wrong_hash).expect("parse");
        assert_eq!(n.verify("PeterNeumann", &peter), not_signed);
        // TestOpen "misnamed": the right signature under another name.
        let misnamed = published.replace("PeterNeumann", "CarmenSandiego");
        let n = SignedNote::parse(&misnamed).expect("parse");
        assert_eq!(n.verify("PeterNeumann", &peter), not_signed);
    }

    /// TestOpen "Invalid encoded message syntax" and "too many signatures": each is refused as
    /// malformed before any key is tried.
    #[test]
    fn malformed_notes_from_test_open() {
        let bad = [
            ("text only", TEXT.to_owned()),
            ("text and blank line", format!("{TEXT}\n")),
            (
                "no final newline",
                format!("{TEXT}\n{}", PETER_SIG.trim_end_matches('\n')),
            ),
            (
                "name with a space",
                format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
            ),
            (
                "control character in the text",
                format!("\u{1}{TEXT}\n{PETER_SIG}"),
            ),
            (
                "unexpected line",
                format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
            ),
            (
                "101 signatures",
                format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
            ),
        ];
        for (what, note) in bad {
            assert!(
                matches!(SignedNote::parse(&note), Err(NoteError::Malformed(_))),
                "{what}: {:?}",
                SignedNote::parse(&note)
            );
        }
        // 100 signatures are still a note.
        let hundred = format!("{TEXT}\n{}", PETER_SIG.repeat(100));
        assert_eq!(
            SignedNote::parse(&hundred).expect("parse").signatures.len(),
            100
        );
    }

    /// A tree head as sum.golang.org serves it (tree size 65209736, from a Go toolchain
    /// lookup of golang.org/x/sync@v0.1.0 quoted in a public test), verified with the key the
    /// Go toolchain pins, `sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8`.
    /// Its signature was checked independently with Python before it was written here.
    #[test]
    fn sum_golang_org_checkpoint_opens() {
        const VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
        const NOTE: &str = "go.sum database tree\n65209736\n\
                            5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo=\n\n\
                            \u{2014} sum.golang.org Az3grnbssgK7ubgFX36gVETtNv0U23qxyAhAMai2QUfeGa3nB/akvkMdlUErfcZz7l/R3cVtYspg3dxXABkGZZKdsQ8=\n";
        let key = key_of(VKEY);
        assert_eq!(verifier_key("sum.golang.org", &key), VKEY);
        let (cp, _) = Checkpoint::open(NOTE, "sum.golang.org", &key).expect("open");
        assert_eq!(cp.origin, "go.sum database tree");
        assert_eq!(cp.size, 65_209_736);
        assert_eq!(
            STANDARD.encode(cp.root),
            "5+uGFjx6xBZG8ip1+wi77v+grwbhhukIrxEUS8PXvRo="
        );
        assert_eq!(
            format!("{}\n", cp.body()),
            NOTE.split_once('\u{2014}').expect("sig").0
        );
        // One more leaf claimed: the signature no longer covers it.
        let grown = NOTE.replacen("65209736", "65209737", 1);
        assert_eq!(
            Checkpoint::open(&grown, "sum.golang.org", &key).err(),
            Some(NoteError::NotSigned("sum.golang.org".into()))
        );
    }
}

/// JWS (RFC 7515) known answers: ES256 from RFC 7515 Appendix A.3, EdDSA from RFC 8037 A.4 in
/// the JOSE cookbook, and the RFC 7520 §4.3 (ES512) and §4.4 (HS256) examples, which bizcred
/// refuses by name.
mod jws {
    use super::{json, vectors};
    use bizcred_core::jwk::Jwk;
    use bizcred_core::jws::{self, Jws, JwsError};
    use bizcred_core::keys::{AlgorithmError, KeyError, PublicKey, SecretKey, Signer};
    use bizcred_core::{base64url_decode, base64url_encode};
    use serde_json::{json, Map};

    /// RFC 7515 A.3.1: the P-256 key (`d` recomputed to `x`, `y` with Python `cryptography`).
    fn a3_jwk() -> serde_json::Value {
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
        })
    }

    /// RFC 7515 A.3.1: the compact JWS (line breaks removed).
    const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9\
        .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
        .DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    /// RFC 7515 A.3.1: the payload bytes, with the RFC's CR LF line breaks.
    const A3_PAYLOAD: &[u8] =
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";

    fn a3_public() -> PublicKey {
        let jwk: Jwk = serde_json::from_value(a3_jwk()).expect("jwk");
        PublicKey::from_jwk(&jwk).expect("A.3 key")
    }

    /// RFC 7515 A.3: our verifier accepts the RFC's ES256 JWS (its `s` is in the high half,
    /// so a verifier that insisted on low-S would refuse it) and reads the exact payload.
    #[test]
    fn rfc7515_a3_es256_verifies() {
        let key = a3_public();
        assert_eq!(
            SecretKey::from_private_jwk(&a3_jwk())
                .expect("A.3 private key")
                .public_key(),
            key
        );
        let jws = Jws::decode(A3_JWS).expect("decode");
        assert_eq!(jws.header_str("alg"), Some("ES256"));
        assert_eq!(jws.payload, A3_PAYLOAD);
        jws.verify(&key).expect("RFC 7515 A.3 verifies");
        assert_eq!(jws.claims().expect("claims")["exp"], 1_300_819_380);
    }

    /// RFC 7515 A.3 with one changed bit in the signature, or in the payload, is
    /// `BadSignature`; with an Ed25519 key it is an algorithm/key mismatch.
    #[test]
    fn rfc7515_a3_changed_byte_is_bad_signature() {
        let key = a3_public();
        let parts: Vec<&str> = A3_JWS.split('.').collect();
        let mut sig = base64url_decode(parts[2]).expect("sig");
        sig[31] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], base64url_encode(&sig));
        assert_eq!(
            Jws::decode(&forged).expect("decode").verify(&key),
            Err(JwsError::BadSignature)
        );
        let mut payload = A3_PAYLOAD.to_vec();
        payload[8] ^= 1; // "joe" -> "koe"
        let forged = format!("{}.{}.{}", parts[0], base64url_encode(&payload), parts[2]);
        assert_eq!(
            Jws::decode(&forged).expect("decode").verify(&key),
            Err(JwsError::BadSignature)
        );
        let ed = SecretKey::generate(bizcred_core::keys::Algorithm::EdDSA, &mut rand_core::OsRng);
        assert!(matches!(
            Jws::decode(A3_JWS)
                .expect("decode")
                .verify(&ed.public_key()),
            Err(JwsError::AlgorithmKeyMismatch { .. })
        ));
    }

    /// RFC 8037 A.4/A.5 as the JOSE cookbook publishes it (`curve25519/jws.json`): signing the
    /// payload with the cookbook key gives the published compact JWS byte for byte, and the
    /// published JWS verifies.
    #[test]
    fn cookbook_curve25519_eddsa_jws() {
        let Some(v) = vectors() else { return };
        let c = json(&v.join("ietf-jose-cookbook/curve25519/jws.json"));
        let key = SecretKey::from_private_jwk(&c["input"]["key"]).expect("cookbook key");
        let payload = c["input"]["payload"].as_str().expect("payload");
        let compact = c["output"]["compact"].as_str().expect("compact");
        assert_eq!(
            jws::sign(Map::new(), payload.as_bytes(), &key).expect("sign"),
            compact
        );
        let sig_input = c["signing"]["sig-input"].as_str().expect("sig-input");
        assert_eq!(
            base64url_encode(key.sign(sig_input.as_bytes()).expect("sign")),
            c["signing"]["sig"].as_str().expect("sig")
        );
        let d = Jws::decode(compact).expect("decode");
        d.verify(&key.public_key()).expect("verifies");
        assert_eq!(d.payload, payload.as_bytes());
    }

    /// RFC 7520 §4.3 (`jws/4_3.ecdsa_signature.json`): ES512 over P-521 is not a bizcred
    /// algorithm; the JWS is refused by its `alg` and the key by its curve.
    #[test]
    fn rfc7520_4_3_es512_is_refused_by_name() {
        let Some(v) = vectors() else { return };
        let c = json(&v.join("ietf-jose-cookbook/jws/4_3.ecdsa_signature.json"));
        let d = Jws::decode(c["output"]["compact"].as_str().expect("compact")).expect("decode");
        assert_eq!(
            d.algorithm(),
            Err(JwsError::Algorithm(AlgorithmError::Unsupported(
                "ES512".into()
            )))
        );
        let jwk: Jwk = serde_json::from_value(c["input"]["key"].clone()).expect("jwk");
        assert_eq!(PublicKey::from_jwk(&jwk), Err(KeyError::UnsupportedKeyType));
        assert!(matches!(
            SecretKey::from_private_jwk(&c["input"]["key"]),
            Err(KeyError::UnsupportedKeyType)
        ));
    }

    /// RFC 7520 §4.4 (`jws/4_4.hmac-sha2_integrity_protection.json`): an HS256 MAC is refused
    /// as symmetric, whatever key is offered.
    #[test]
    fn rfc7520_4_4_hs256_is_refused_as_symmetric() {
        let Some(v) = vectors() else { return };
        let c = json(&v.join("ietf-jose-cookbook/jws/4_4.hmac-sha2_integrity_protection.json"));
        let d = Jws::decode(c["output"]["compact"].as_str().expect("compact")).expect("decode");
        assert_eq!(
            d.verify(&a3_public()),
            Err(JwsError::Algorithm(AlgorithmError::Symmetric(
                "HS256".into()
            )))
        );
    }
}

/// W3C vc-di-eddsa `eddsa-jcs-2022` test vectors (`w3c-vc-di-eddsa/TestVectors/`: the key in
/// `keyPair.json`, the document in `unsigned.json`, every intermediate in `eddsa-jcs-2022/`).
/// JCS is the canonicalizer `data_integrity` uses (`serde_json_canonicalizer`); the signature
/// is reproduced through `data_integrity::sign` itself, so the hash data it signs must be the
/// published one byte for byte.
mod eddsa_jcs_2022 {
    use super::{json, read, to_hex, unhex, vectors};
    use bizcred_core::data_integrity::{self, ProofError};
    use bizcred_core::did;
    use bizcred_core::keys::{Algorithm, PublicKey, SecretKey, Signer};
    use serde_json::Value;
    use sha2::{Digest, Sha256};
    use std::path::PathBuf;

    /// The multicodec prefix of an Ed25519 private key (0x1300, varint `80 26`).
    const ED25519_PRIV: [u8; 2] = [0x80, 0x26];

    fn dir() -> Option<PathBuf> {
        vectors().map(|v| v.join("w3c-vc-di-eddsa/TestVectors"))
    }

    fn keys(dir: &std::path::Path) -> (SecretKey, PublicKey) {
        let kp = json(&dir.join("keyPair.json"));
        let mb = kp["privateKeyMultibase"].as_str().expect("private");
        let raw = bs58::decode(mb.strip_prefix('z').expect("base58btc"))
            .into_vec()
            .expect("base58");
        assert_eq!(raw[..2], ED25519_PRIV, "Ed25519 private multikey");
        let sk = SecretKey::from_bytes(Algorithm::EdDSA, &raw[2..]).expect("seed");
        let pk = did::from_multikey(kp["publicKeyMultibase"].as_str().expect("public"))
            .expect("public multikey");
        assert_eq!(sk.public_key(), pk, "keyPair.json halves belong together");
        (sk, pk)
    }

    fn text(dir: &std::path::Path, name: &str) -> String {
        read(&dir.join("eddsa-jcs-2022").join(name))
    }

    fn jcs(v: &Value) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(v).expect("jcs")
    }

    /// The signed document's proof, and the document without it.
    fn signed(dir: &std::path::Path) -> (Value, Value) {
        let mut doc = json(&dir.join("eddsa-jcs-2022/signedJCS.json"));
        let proof = doc
            .as_object_mut()
            .expect("object")
            .remove("proof")
            .expect("proof");
        (doc, proof)
    }

    /// `canonDocJCS.txt` and `docHashJCS.txt`: the JCS form of `unsigned.json` and its hash.
    #[test]
    fn canonical_document_and_hash() {
        let Some(d) = dir() else { return };
        let doc = json(&d.join("unsigned.json"));
        let canon = jcs(&doc);
        assert_eq!(
            String::from_utf8(canon.clone()).expect("utf-8"),
            text(&d, "canonDocJCS.txt")
        );
        assert_eq!(
            to_hex(&Sha256::digest(&canon)),
            text(&d, "docHashJCS.txt").trim()
        );
    }

    /// `proofConfigJCS.json`, `proofCanonJCS.txt` and `proofHashJCS.txt`: the proof options
    /// `data_integrity::sign` builds (type, cryptosuite, verificationMethod, created,
    /// proofPurpose and the document's `@context`), their JCS form and its hash.
    #[test]
    fn proof_config_canonical_form_and_hash() {
        let Some(d) = dir() else { return };
        let config = json(&d.join("eddsa-jcs-2022/proofConfigJCS.json"));
        let (_, mut proof) = signed(&d);
        proof.as_object_mut().expect("object").remove("proofValue");
        assert_eq!(
            proof, config,
            "the signed proof without proofValue is the config"
        );
        let canon = jcs(&config);
        assert_eq!(
            String::from_utf8(canon.clone()).expect("utf-8"),
            text(&d, "proofCanonJCS.txt")
        );
        assert_eq!(
            to_hex(&Sha256::digest(&canon)),
            text(&d, "proofHashJCS.txt").trim()
        );
    }

    /// `combinedHashJCS.txt`: proof hash then document hash.
    #[test]
    fn combined_hash() {
        let Some(d) = dir() else { return };
        let mut combined =
            Sha256::digest(jcs(&json(&d.join("eddsa-jcs-2022/proofConfigJCS.json")))).to_vec();
        combined.extend(Sha256::digest(jcs(&json(&d.join("unsigned.json")))));
        assert_eq!(to_hex(&combined), text(&d, "combinedHashJCS.txt").trim());
    }

    /// `sigHexJCS.txt` / `sigBTC58JCS.txt` / `signedJCS.json`: `data_integrity::sign` with the
    /// published key, time and method reproduces the published proof, signature included.
    #[test]
    fn signature_and_signed_document() {
        let Some(d) = dir() else { return };
        let (sk, _) = keys(&d);
        let doc = json(&d.join("unsigned.json"));
        let (signed_doc, published) = signed(&d);
        assert_eq!(
            signed_doc, doc,
            "signedJCS.json is unsigned.json plus the proof"
        );
        let vm = published["verificationMethod"].as_str().expect("vm");
        let created = published["created"].as_str().expect("created");
        let proof = data_integrity::sign(&doc, &sk, vm, created, "assertionMethod").expect("sign");
        assert_eq!(proof, published);
        let value = proof["proofValue"].as_str().expect("proofValue");
        assert_eq!(value, text(&d, "sigBTC58JCS.txt").trim());
        let sig = bs58::decode(&value[1..]).into_vec().expect("base58");
        assert_eq!(to_hex(&sig), text(&d, "sigHexJCS.txt").trim());
        // The same signature over the published combined hash, through the Signer alone.
        let combined = unhex(text(&d, "combinedHashJCS.txt").trim());
        assert_eq!(to_hex(&sk.sign(&combined).expect("sign")), to_hex(&sig));
    }

    /// `signedJCS.json` verifies with the key its `did:key` verification method names, and
    /// any change to the document or the signature is `BadSignature`.
    #[test]
    fn signed_document_verifies() {
        let Some(d) = dir() else { return };
        let (_, pk) = keys(&d);
        let (doc, proof) = signed(&d);
        let vm = data_integrity::verification_method(&proof, "assertionMethod").expect("shape");
        let (_, vm_key) = data_integrity::did_key_method(vm).expect("did:key method");
        assert_eq!(vm_key, pk);
        assert_eq!(
            data_integrity::verify(&doc, &proof, &pk, "assertionMethod"),
            Ok(())
        );

        let mut changed = doc.clone();
        changed["credentialSubject"]["alumniOf"] = "The School of Exampleз".into();
        assert_eq!(
            data_integrity::verify(&changed, &proof, &pk, "assertionMethod"),
            Err(ProofError::BadSignature)
        );
        let value = proof["proofValue"].as_str().expect("proofValue");
        let mut sig = bs58::decode(&value[1..]).into_vec().expect("base58");
        sig[0] ^= 1;
        let mut forged = proof.clone();
        forged["proofValue"] = format!("z{}", bs58::encode(sig).into_string()).into();
        assert_eq!(
            data_integrity::verify(&doc, &forged, &pk, "assertionMethod"),
            Err(ProofError::BadSignature)
        );
        let mut later = proof.clone();
        later["created"] = "2023-02-24T23:36:39Z".into();
        assert_eq!(
            data_integrity::verify(&doc, &later, &pk, "assertionMethod"),
            Err(ProofError::BadSignature)
        );
    }
}
