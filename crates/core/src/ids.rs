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
/// An ADB key pair.
pub const KEY_PAIR: &str = "kp-";
/// A live screen session (one viewer's WebSocket).
pub const STREAM_SESSION: &str = "ss-";

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
    use crate::time::now_ms;

    /// The tests that make ids or set the id clock ([`LAST`]) run one at a time: one of them
    /// moves the clock into the future and back.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_clock(ms: u64, tail: u64) {
        *LAST.lock().unwrap() = (ms, tail);
    }

    /// The time part of an id (milliseconds since 1970) and the part after it.
    fn parts(id: &str, prefix: &str) -> (u64, u64) {
        let rest = &id[prefix.len()..];
        let (time, tail) = rest.split_at(TIME_DIGITS as usize);
        (
            u64::from_str_radix(time, 36).unwrap(),
            u64::from_str_radix(tail, 36).unwrap(),
        )
    }

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
        let _serial = serial();
        let id = new_id(TASK);
        assert!(is_well_formed(&id, TASK), "{id}");
        assert!(!is_well_formed("t-ABC", TASK));
        assert!(!is_well_formed(&id, INSTANCE));
        assert_ne!(new_id(TASK), new_id(TASK));
    }

    #[test]
    fn ids_made_later_sort_later() {
        let _serial = serial();
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

    /// Ids sort by the time they were made across processes and restarts too, not only within
    /// one process: their first nine digits are the clock's milliseconds.
    #[test]
    fn an_id_carries_the_time_it_was_made() {
        let _serial = serial();
        let before = u64::try_from(now_ms()).unwrap();
        let ids: Vec<String> = (0..10_000).map(|_| new_id(INSTANCE)).collect();
        let after = u64::try_from(now_ms()).unwrap();
        for id in &ids {
            let (ms, _) = parts(id, INSTANCE);
            assert!(
                before <= ms && ms <= after,
                "{id}: {ms} not in {before}..={after}"
            );
        }
    }

    /// The part after the time starts in the lower half of its 36^7 values in each new
    /// millisecond, so that the millisecond holds at least about 600,000 ids (steps of at
    /// most 2^16) before the ids borrow the next one and run ahead of the clock.
    #[test]
    fn a_new_millisecond_leaves_room_for_its_ids() {
        let _serial = serial();
        for _ in 0..20 {
            set_clock(0, 0);
            let id = new_id(TASK);
            let (_, tail) = parts(&id, TASK);
            assert!(tail < TAIL_SPACE / 2, "{id}");
        }
    }

    /// A millisecond whose ids ran out goes on in the next one, still sorting after the last
    /// id given out, and again with room for many ids.
    #[test]
    fn a_millisecond_that_ran_out_of_ids_goes_on_in_the_next() {
        let _serial = serial();
        let saved = *LAST.lock().unwrap();
        // An hour ahead, so that the real clock does not catch up during the test.
        let ahead = u64::try_from(now_ms()).unwrap() + 3_600_000;
        for _ in 0..20 {
            set_clock(ahead, TAIL_SPACE - 1);
            let mut last = TASK.to_string();
            push_base36(&mut last, ahead, TIME_DIGITS);
            push_base36(&mut last, TAIL_SPACE - 1, TAIL_DIGITS);
            let next = new_id(TASK);
            assert!(next > last, "{next} after {last}");
            let (ms, tail) = parts(&next, TASK);
            assert_eq!(ms, ahead + 1, "{next}");
            assert!(tail < TAIL_SPACE / 2, "{next}");
            let more: Vec<String> = (0..1_000).map(|_| new_id(TASK)).collect();
            assert!(more.iter().all(|id| parts(id, TASK).0 == ahead + 1));
        }
        *LAST.lock().unwrap() = saved;
    }

    #[test]
    fn only_prefix_and_sixteen_base36_characters_are_well_formed() {
        assert!(is_well_formed("acp-0123456789abcdef", INSTANCE));
        // Sixteen characters, but not all base-36 lower case.
        assert!(!is_well_formed("acp-0123456789ABCDEF", INSTANCE));
        assert!(!is_well_formed("acp-0123456789abcde_", INSTANCE));
        // Base-36, but fifteen or seventeen.
        assert!(!is_well_formed("acp-0123456789abcde", INSTANCE));
        assert!(!is_well_formed("acp-0123456789abcdefg", INSTANCE));
        assert!(!is_well_formed("ag-0123456789abcdef", INSTANCE));
    }

    /// Generated access key secrets: as long as asked, alphanumeric, and never the same twice.
    #[test]
    fn secrets_are_random_alphanumeric_of_the_asked_length() {
        let a = secret(30);
        assert_eq!(a.len(), 30);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, secret(30));
        assert_eq!(secret(0), "");
        // Every character class shows up in a long secret (62 symbols, 2,000 draws).
        let long = secret(2_000);
        assert!(long.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(long.bytes().any(|b| b.is_ascii_lowercase()));
        assert!(long.bytes().any(|b| b.is_ascii_digit()));
    }

    #[test]
    fn request_ids_are_upper_case_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id, id.to_uppercase());
    }
}
