//! RFC 9162 Merkle trees: leaf and node hashing (§2.1.1), inclusion proofs (§2.1.3) and
//! consistency proofs (§2.1.4), generated from the leaf hashes and verified from proofs alone.

use crate::ReasonCode;
use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Index or sizes out of range.
    #[error("index or tree sizes out of range")]
    Range,
    /// The proof has the wrong number of hashes.
    #[error("the proof has the wrong length")]
    Length,
    /// The recomputed root differs.
    #[error("the proof does not lead to the expected root")]
    Mismatch,
}

impl ProofError {
    /// The stable reason code.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::MerkleProofInvalid
    }
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of an empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `index` in the tree of `leaves` (RFC 9162 §2.1.3.1 PATH).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    if index >= leaves.len() {
        return Err(ProofError::Range);
    }
    fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        if m < k {
            path(m, &d[..k], out);
            out.push(root(&d[k..]));
        } else {
            path(m - k, &d[k..], out);
            out.push(root(&d[..k]));
        }
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Ok(out)
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::Length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length);
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// The consistency proof between the first `first` leaves and all of `leaves`
/// (RFC 9162 §2.1.4.1 PROOF).
pub fn consistency_proof(first: usize, leaves: &[Hash]) -> Result<Vec<Hash>, ProofError> {
    if first == 0 || first > leaves.len() {
        return Err(ProofError::Range);
    }
    fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
        let n = d.len();
        if m == n {
            if !complete {
                out.push(root(d));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(m, &d[..k], complete, out);
            out.push(root(&d[k..]));
        } else {
            subproof(m - k, &d[k..], false, out);
            out.push(root(&d[..k]));
        }
    }
    let mut out = Vec::new();
    if first < leaves.len() {
        subproof(first, leaves, true, &mut out);
    }
    Ok(out)
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::Range);
    }
    if first == second {
        return if proof.is_empty() && first_root == second_root {
            Ok(())
        } else if !proof.is_empty() {
            Err(ProofError::Length)
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::Length);
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_root);
    }
    let (mut f_n, mut s_n) = (first - 1, second - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if s_n == 0 {
            return Err(ProofError::Length);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::Length);
    }
    if &fr == first_root && &sr == second_root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn small_trees() {
        assert_eq!(root(&[]), empty_root());
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every inclusion proof of a random tree verifies; any flipped bit fails.
        #[test]
        fn inclusion_proofs(n in 1usize..70, pick in any::<prop::sample::Index>(), bit in 0usize..256) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick.index(n);
            let proof = inclusion_proof(i, &l).expect("in range");
            prop_assert_eq!(verify_inclusion(i as u64, n as u64, &l[i], &proof, &r), Ok(()));
            let mut bad_leaf = l[i];
            bad_leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(i as u64, n as u64, &bad_leaf, &proof, &r).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = bit % bad.len();
                bad[j][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &bad, &r).is_err());
            }
            let mut bad_root = r;
            bad_root[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &proof, &bad_root).is_err());
        }

        /// Every consistency proof between two sizes of a random tree verifies; any flipped
        /// bit fails.
        #[test]
        fn consistency_proofs(n in 1usize..70, pick in any::<prop::sample::Index>(), bit in 0usize..256) {
            let l = leaves(n);
            let m = pick.index(n) + 1;
            let (r1, r2) = (root(&l[..m]), root(&l));
            let proof = consistency_proof(m, &l).expect("in range");
            prop_assert_eq!(verify_consistency(m as u64, n as u64, &r1, &r2, &proof), Ok(()));
            let mut bad1 = r1;
            bad1[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(m as u64, n as u64, &bad1, &r2, &proof).is_err());
            let mut bad2 = r2;
            bad2[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(m as u64, n as u64, &r1, &bad2, &proof).is_err());
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = bit % bad.len();
                bad[j][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(verify_consistency(m as u64, n as u64, &r1, &r2, &bad).is_err());
            }
        }
    }
}
