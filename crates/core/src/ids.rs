//! Identifiers in the vendor's shape: a prefix and 16 lowercase base-36 characters; request ids
//! as upper-case UUIDs.
//!
//! Both are time-ordered: ids made later sort later (within a process strictly so). Every task
//! row is written into a dozen indexes, and a new row whose keys land at the right edge of each
//! index dirties a few pages per commit instead of one random page per row: that halved the
//! SQLite limit's time for 10,000 tasks (the write benchmark of issue 6).

use std::sync::Mutex;

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
/// A webhook.
pub const WEBHOOK: &str = "wh-";

/// Base-36 digits of the time part (milliseconds since 1970: nine digits last until the year
/// 5188) and of the part after it.
const TIME_DIGITS: u32 = 9;
const TAIL_DIGITS: u32 = 7;
const TAIL_SPACE: u64 = 36u64.pow(TAIL_DIGITS);

/// The last (time, tail) this process gave out.
static LAST: Mutex<(u64, u64)> = Mutex::new((0, 0));

/// A new id with `prefix` and 16 base-36 characters: the time in milliseconds, then 7 digits
/// that start at a random point in each millisecond and grow by a random step within it (about
/// 36 random bits; unique within a process, and across processes but for a chance of about
/// one in 10^10 per pair of ids made in the same millisecond).
pub fn new_id(prefix: &str) -> String {
    let now = u64::try_from(crate::time::now_ms()).unwrap_or(0);
    let mut rng = rand::rng();
    let (ms, tail) = {
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let next = if now > last.0 {
            (now, rng.random_range(0..TAIL_SPACE / 2))
        } else {
            // The same millisecond (or the clock went back): after the last one given out.
            let tail = last.1 + rng.random_range(1..=1 << 16);
            if tail < TAIL_SPACE {
                (last.0, tail)
            } else {
                (last.0 + 1, rng.random_range(0..TAIL_SPACE / 2))
            }
        };
        *last = next;
        next
    };
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    push_base36(&mut id, ms, TIME_DIGITS);
    push_base36(&mut id, tail, TAIL_DIGITS);
    id
}

/// An id that is the same for the same `key` every time (a device found on an ADB server is the
/// same instance after a restart): 16 base-36 digits of two stable 64-bit FNV-1a hashes.
pub fn stable_id(prefix: &str, key: &str) -> String {
    let fnv = |basis: u64| {
        key.bytes().fold(basis, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    push_base36(&mut id, fnv(0xcbf2_9ce4_8422_2325), 8);
    push_base36(&mut id, fnv(0x6c62_272e_07bb_0142), 8);
    id
}

/// Appends `n` as exactly `digits` base-36 digits (the low ones, zero-padded).
fn push_base36(out: &mut String, mut n: u64, digits: u32) {
    let mut buf = [b'0'; 16];
    for slot in buf[..digits as usize].iter_mut().rev() {
        *slot = ALPHABET[(n % 36) as usize];
        n /= 36;
    }
    out.extend(buf[..digits as usize].iter().map(|&b| b as char));
}

/// Whether `id` has the shape `prefix` + 16 base-36 characters.
pub fn is_well_formed(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| ALPHABET.contains(&b)))
}

/// A new request id: an upper-case UUID (version 7: time-ordered, as the ids above).
pub fn request_id() -> String {
    uuid::Uuid::now_v7().to_string().to_uppercase()
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
    fn stable_ids_depend_on_the_key_only() {
        let a = stable_id(INSTANCE, "lab-1/127.0.0.1:5555");
        assert_eq!(a, stable_id(INSTANCE, "lab-1/127.0.0.1:5555"));
        assert_ne!(a, stable_id(INSTANCE, "lab-1/127.0.0.1:5556"));
        assert_eq!(a.len(), INSTANCE.len() + 16);
        assert!(a[INSTANCE.len()..].bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn ids_have_vendor_shape() {
        let id = new_id(TASK);
        assert!(is_well_formed(&id, TASK), "{id}");
        assert!(!is_well_formed("t-ABC", TASK));
        assert!(!is_well_formed(&id, INSTANCE));
        assert_ne!(new_id(TASK), new_id(TASK));
    }

    #[test]
    fn ids_made_later_sort_later() {
        let ids: Vec<String> = (0..10_000).map(|_| new_id(TASK)).collect();
        assert!(ids.iter().all(|id| is_well_formed(id, TASK)));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        let requests: Vec<String> = (0..1_000).map(|_| request_id()).collect();
        assert!(requests.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn base36_is_fixed_width() {
        let mut s = String::new();
        push_base36(&mut s, 0, 3);
        push_base36(&mut s, 35, 2);
        push_base36(&mut s, 36, 2);
        assert_eq!(s, "000".to_string() + "0z" + "10");
    }

    #[test]
    fn request_ids_are_upper_case_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_uppercase());
    }
}
