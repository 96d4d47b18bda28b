//! Identifiers in the vendor's shape: a prefix and 16 lowercase base-36 characters; request ids
//! as upper-case UUIDs.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Prefix of instance ids.
pub const INSTANCE: &str = "acp-";
/// Prefix of instance group ids.
pub const GROUP: &str = "ag-";
/// Prefix of task ids.
pub const TASK: &str = "t-";
/// Prefix of image ids.
pub const IMAGE: &str = "imgc-";
/// Prefix of backup file ids.
pub const BACKUP: &str = "bf-";

/// A new random id with `prefix` and 16 base-36 characters (about 82 bits).
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    for _ in 0..16 {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

/// Whether `id` has the shape `prefix` + 16 base-36 characters.
pub fn is_well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

/// A new request id: an upper-case UUID.
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// A random secret of `len` alphanumeric characters, for generated access keys.
pub fn secret(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_vendor_shape() {
        let id = new_id(TASK);
        assert!(is_well_formed(&id, TASK), "{id}");
        assert!(!is_well_formed("t-ABC", TASK));
        assert!(!is_well_formed(&id, INSTANCE));
        assert_ne!(new_id(TASK), new_id(TASK));
    }

    #[test]
    fn request_ids_are_upper_case_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_uppercase());
    }
}
