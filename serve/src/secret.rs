//! Tokens as the console and the agent keep them: only a SHA-256 hash of each is stored, as
//! lower-case hex, so a stolen tokens file or database row signs nobody in.

/// The SHA-256 of `token`, as lower-case hex (what is stored and compared).
pub fn token_hash(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// Bytes as lower-case hex text.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_as_the_hex_of_its_sha256() {
        // FIPS 180-2's example: SHA-256("abc").
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }
}
