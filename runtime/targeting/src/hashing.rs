//! GrowthBook's experiment assignment maths: the deterministic hash that puts
//! a user in `[0, 1)`, bucket ranges built from weights and coverage, choosing
//! a variation from those ranges, and namespaces.
//!
//! Everything here reproduces the GrowthBook JavaScript SDK bit for bit. In
//! particular the hash is 32-bit FNV-1a over UTF-16 code units (what JS
//! `charCodeAt` yields), not over UTF-8 bytes, so ids outside ASCII land in
//! the same bucket as they do in every GrowthBook SDK.

/// FNV-1a 32-bit offset basis.
const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
/// FNV-1a 32-bit prime (`2^24 + 2^8 + 0x93`).
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1a 32-bit over the UTF-16 code units of `parts`, concatenated.
///
/// The JS SDK xors whole 16-bit code units (not bytes) into the state and
/// multiplies with shifts and adds, which wraps exactly like a 32-bit
/// multiplication by the FNV prime.
fn fnv1a_utf16<'a>(parts: impl IntoIterator<Item = &'a str>) -> u32 {
    parts
        .into_iter()
        .flat_map(str::encode_utf16)
        .fold(FNV_OFFSET_BASIS, |state, unit| {
            (state ^ u32::from(unit)).wrapping_mul(FNV_PRIME)
        })
}

/// GrowthBook's hash of `value` with `seed`, a number in `[0, 1)`.
///
/// Version 2 is the current unbiased algorithm (four decimal places);
/// version 1 is the original one kept for old experiments (three decimal
/// places, seed appended instead of prepended). Other versions return `None`.
#[must_use]
pub fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    match version {
        2 => {
            let first = fnv1a_utf16([seed, value]).to_string();
            let second = fnv1a_utf16([first.as_str()]);
            Some(f64::from(second % 10_000) / 10_000.0)
        }
        1 => Some(f64::from(fnv1a_utf16([value, seed]) % 1_000) / 1_000.0),
        _ => None,
    }
}

/// `n` equal weights that sum to 1; empty when `n` is 0.
#[must_use]
pub fn get_equal_weights(n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    // Variation counts are tiny, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let weight = 1.0 / n as f64;
    vec![weight; n]
}

/// The `[start, end)` hash range of each variation.
///
/// Mirrors the JS SDK's input repair: `coverage` is clamped to `[0, 1]`;
/// `weights` fall back to equal weights when absent, of the wrong length, or
/// not summing to 1 within ±0.01. Each variation's range starts at the
/// cumulative weight of the ones before it and spans `coverage × weight`, so
/// lowering coverage never moves a user to another variation.
#[must_use]
pub fn get_bucket_ranges(
    num_variations: usize,
    coverage: f64,
    weights: Option<&[f64]>,
) -> Vec<(f64, f64)> {
    // Like JS, a NaN coverage stays NaN.
    let coverage = coverage.clamp(0.0, 1.0);
    let equal = get_equal_weights(num_variations);
    let weights = match weights {
        Some(given) if given.len() == num_variations => {
            let total: f64 = given.iter().sum();
            if (0.99..=1.01).contains(&total) || total.is_nan() {
                given
            } else {
                equal.as_slice()
            }
        }
        _ => equal.as_slice(),
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|weight| {
            let start = cumulative;
            cumulative += weight;
            (start, start + coverage * weight)
        })
        .collect()
}

/// The index of the first range containing `n` (start inclusive, end
/// exclusive), or `None` when `n` falls outside every range (the user is not
/// in the experiment; the JS SDK returns -1).
#[must_use]
pub fn choose_variation(n: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges
        .iter()
        .position(|&(start, end)| n >= start && n < end)
}

/// Whether `user_id` falls in `namespace`, given as `(id, start, end)`: the
/// version-1 hash of the id, seeded with `"__" + namespace id`, must lie in
/// `[start, end)`.
#[must_use]
pub fn in_namespace(user_id: &str, namespace: &(impl AsRef<str>, f64, f64)) -> bool {
    let (id, start, end) = namespace;
    let seed = format!("__{}", id.as_ref());
    hash(&seed, user_id, 1).is_some_and(|n| n >= *start && n < *end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_of_empty_input_is_the_offset_basis() {
        assert_eq!(fnv1a_utf16([""]), FNV_OFFSET_BASIS);
    }

    #[test]
    fn fnv_hashes_utf16_units_not_utf8_bytes() {
        // "é" is one UTF-16 unit (0x00E9) but two UTF-8 bytes.
        let one_unit = (FNV_OFFSET_BASIS ^ 0xE9).wrapping_mul(FNV_PRIME);
        assert_eq!(fnv1a_utf16(["é"]), one_unit);
    }

    #[test]
    fn fnv_concatenates_parts() {
        assert_eq!(fnv1a_utf16(["ab", "cd"]), fnv1a_utf16(["abcd"]));
    }

    #[test]
    fn unknown_hash_version_is_none() {
        assert_eq!(hash("a", "b", 0), None);
        assert_eq!(hash("a", "b", 3), None);
    }

    #[test]
    fn nan_weights_are_kept_like_js() {
        // JS compares NaN totals with `<`/`>`, which are both false.
        let ranges = get_bucket_ranges(2, 1.0, Some(&[f64::NAN, 0.5]));
        assert!(ranges[0].1.is_nan());
    }

    #[test]
    fn namespace_accepts_owned_and_borrowed_ids() {
        let owned = (String::from("namespace1"), 0.4, 1.0);
        assert!(in_namespace("1", &owned));
        assert!(in_namespace("1", &("namespace1", 0.4, 1.0)));
    }
}
