//! Random identifiers: the 32 lower-case hex digits of a random 128-bit number, for request
//! ids (`x-request-id`) and shared-state lease ids; [`hex32`] also serves other fixed-width
//! hex (translated tool-use ids).

/// The 32 lower-case hex digits of `n`, most significant first: what `format!("{n:032x}")`
/// writes, without formatting machinery or an allocation.
pub fn hex32(n: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(byte >> 4)];
            *lo = DIGITS[usize::from(byte & 0x0f)];
        }
    }
    hex
}

/// A random id of 32 lower-case hex digits, as text.
pub fn random_hex_string() -> String {
    hex32(fastrand::u128(..))
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex32_writes_what_format_writes() {
        for n in [0, 1, 0xdead_beef, u128::MAX, u128::MAX / 3, 1 << 127] {
            assert_eq!(hex32(n).as_slice(), format!("{n:032x}").as_bytes());
        }
        let id = random_hex_string();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(id, random_hex_string());
    }
}
