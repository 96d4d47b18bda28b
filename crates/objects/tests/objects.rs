//! The object store on a real SQLite store and a temp directory: streaming round trips, bucket
//! ownership, bad paths, MD5 records, conflicts and signed links.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudphone_objects::{ObjectError, ObjectInfo, Objects, OssPath};
use cloudphone_store::{SqliteStore, Store};
use futures::StreamExt;
use md5::{Digest, Md5};

const A: &str = "acct-a";
const B: &str = "acct-b";
const URL: &str = "http://127.0.0.1:9723";

struct Fixture {
    dir: tempfile::TempDir,
    objects: Objects,
    store: Arc<dyn Store>,
}

impl Fixture {
    fn root(&self) -> PathBuf {
        self.dir.path().join("objects")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("cloudphone.db"))
            .await
            .unwrap(),
    );
    let objects = Objects::local(
        dir.path().join("objects"),
        store.clone(),
        b"link-key",
        format!("{URL}/"),
    )
    .unwrap();
    Fixture {
        dir,
        objects,
        store,
    }
}

fn path(s: &str) -> OssPath {
    OssPath::parse(s).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so the content is not trivially compressible.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn md5_of_file(p: &Path) -> String {
    md5_hex(&std::fs::read(p).unwrap())
}

fn not_found<T: std::fmt::Debug>(r: Result<T, ObjectError>) {
    match r {
        Err(ObjectError::NotFound(what)) => assert!(what.starts_with("oss://"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, ObjectError>) {
    assert!(
        matches!(r, Err(ObjectError::InvalidPath(_))),
        "expected InvalidPath, got {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_of_a_large_file() {
    let f = fixture().await;
    let data = pseudo_random(20 * 1024 * 1024 + 12_345, 7);
    let source = f.file("source.bin");
    std::fs::write(&source, &data).unwrap();
    let expected = ObjectInfo {
        size: data.len() as u64,
        md5_hex: md5_hex(&data),
    };
    let p = path("oss://media-a/dir/big file.bin");
    assert_eq!(f.objects.put_file(A, &p, &source).await.unwrap(), expected);
    assert_eq!(
        f.store.bucket_owner("media-a").await.unwrap(),
        Some(A.into())
    );
    assert_eq!(f.objects.head(A, &p).await.unwrap(), expected);

    let copy = f.file("copy.bin");
    assert_eq!(f.objects.get_to_file(A, &p, &copy).await.unwrap(), expected);
    assert_eq!(md5_of_file(&copy), expected.md5_hex);
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), expected.size);

    // The stream of `open` holds the same bytes, in bounded chunks.
    let (info, mut stream) = f.objects.open(&p).await.unwrap();
    assert_eq!(info, expected);
    let mut md5 = Md5::new();
    let mut largest = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        largest = largest.max(chunk.len());
        md5.update(&chunk);
    }
    assert_eq!(hex::encode(md5.finalize()), expected.md5_hex);
    assert!(largest <= 1 << 20, "{largest}");

    // Overwriting replaces the content and the MD5.
    std::fs::write(&source, b"small now").unwrap();
    let small = f.objects.put_file(A, &p, &source).await.unwrap();
    assert_eq!(small.md5_hex, md5_hex(b"small now"));
    assert_eq!(f.objects.head(A, &p).await.unwrap(), small);
    f.objects.get_to_file(A, &p, &copy).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"small now");

    // Nothing is left in the staging directory or beside the copy.
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cloudphone-get-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn put_bytes_empty_objects_and_odd_names() {
    let f = fixture().await;
    for (key, content) in [
        ("out/stdout.txt", &b"hello\n"[..]),
        ("empty", b""),
        ("we%ird#1/名 字?*<>|\"", b"odd"),
        ("a%2Fb", b"percent"),
        ("a/b", b"slash"),
    ] {
        let p = OssPath::new("bucket-1", key).unwrap();
        let info = f.objects.put_bytes(A, &p, content.to_vec()).await.unwrap();
        assert_eq!(info.size, content.len() as u64);
        assert_eq!(info.md5_hex, md5_hex(content));
        let copy = f.file("copy");
        assert_eq!(f.objects.get_to_file(A, &p, &copy).await.unwrap(), info);
        assert_eq!(std::fs::read(&copy).unwrap(), content, "{key}");
    }
    // `a%2Fb` and `a/b` are different objects.
    let copy = f.file("copy");
    f.objects
        .get_to_file(A, &path("oss://bucket-1/a%2Fb"), &copy)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"percent");
    // An empty file streams in too.
    let empty = f.file("empty");
    std::fs::write(&empty, b"").unwrap();
    let info = f
        .objects
        .put_file(A, &path("oss://bucket-1/empty2"), &empty)
        .await
        .unwrap();
    assert_eq!(info.md5_hex, md5_hex(b""));
}

#[tokio::test]
async fn buckets_belong_to_their_first_writer() {
    let f = fixture().await;
    let p = path("oss://shared-name/secret.txt");
    f.objects.put_bytes(A, &p, b"mine".to_vec()).await.unwrap();
    let copy = f.file("copy");
    // B can neither read, nor see, nor overwrite A's objects, nor write to A's bucket.
    not_found(f.objects.head(B, &p).await);
    not_found(f.objects.get_to_file(B, &p, &copy).await);
    not_found(f.objects.open_as(B, &p).await.map(|(info, _)| info));
    not_found(f.objects.put_bytes(B, &p, b"theirs".to_vec()).await);
    not_found(
        f.objects
            .put_bytes(B, &path("oss://shared-name/new.txt"), b"x".to_vec())
            .await,
    );
    let local = f.file("local");
    std::fs::write(&local, b"theirs").unwrap();
    not_found(f.objects.put_file(B, &p, &local).await);
    assert!(!copy.exists());
    // A missing object and an unknown bucket look the same as another account's object.
    not_found(f.objects.head(A, &path("oss://shared-name/missing")).await);
    not_found(f.objects.head(A, &path("oss://no-such-bucket/x")).await);
    not_found(
        f.objects
            .get_to_file(A, &path("oss://no-such-bucket/x"), &copy)
            .await,
    );
    not_found(
        f.objects
            .open(&path("oss://shared-name/missing"))
            .await
            .map(|(i, _)| i),
    );
    // Reading an unknown bucket does not create it.
    assert_eq!(f.store.bucket_owner("no-such-bucket").await.unwrap(), None);
    // A's content is intact.
    f.objects.get_to_file(A, &p, &copy).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"mine");
    // B has buckets of its own.
    f.objects
        .put_bytes(B, &path("oss://bucket-b/x"), b"b".to_vec())
        .await
        .unwrap();
    not_found(f.objects.head(A, &path("oss://bucket-b/x")).await);
}

#[tokio::test]
async fn bad_paths_are_refused_and_touch_nothing() {
    let f = fixture().await;
    for s in [
        "oss://bucket/../escape",
        "oss://bucket/a/../../escape",
        "oss://bucket//etc/passwd",
        "oss://bucket/a\0b",
        "oss://bucket/",
        "oss://bucket/dir/",
        "oss://bucket/a\\..\\b",
        "oss://Bucket/key",
        "oss://b/key",
        "oss://-bucket/key",
        "oss://bucket_x/key",
        "/etc/passwd",
        "file:///etc/passwd",
    ] {
        invalid(OssPath::parse(s));
    }
    // Paths built by hand (bypassing `parse`) are validated again before any storage call.
    let copy = f.file("copy");
    let local = f.file("local");
    std::fs::write(&local, b"x").unwrap();
    for (bucket, key) in [
        ("bucket", "../escape"),
        ("bucket", "/abs"),
        ("bucket", ""),
        ("bucket", "a/./b"),
        ("bucket", "nul\0"),
        ("..", "key"),
        ("bucket/..", "key"),
        ("UPPER", "key"),
    ] {
        let p = OssPath {
            bucket: bucket.into(),
            key: key.into(),
        };
        invalid(f.objects.put_bytes(A, &p, b"x".to_vec()).await);
        invalid(f.objects.put_file(A, &p, &local).await);
        invalid(f.objects.head(A, &p).await);
        invalid(f.objects.get_to_file(A, &p, &copy).await);
        invalid(f.objects.open(&p).await.map(|(i, _)| i));
    }
    // Nothing was written anywhere, and no bucket was claimed.
    assert!(!f.dir.path().join("escape").exists());
    assert_eq!(f.store.bucket_owner("bucket").await.unwrap(), None);
    // A key segment longer than a file name can be is a clear error, not an I/O failure.
    let long = OssPath::new("bucket", &"n".repeat(600)).unwrap();
    invalid(f.objects.put_bytes(A, &long, b"x".to_vec()).await);
    // A missing local source is an I/O error, and claims nothing.
    let missing = f.file("missing");
    assert!(matches!(
        f.objects
            .put_file(A, &path("oss://bucket/x"), &missing)
            .await,
        Err(ObjectError::Io(_))
    ));
    assert!(!copy.exists());
}

#[tokio::test]
async fn objects_and_folders_cannot_collide() {
    let f = fixture().await;
    f.objects
        .put_bytes(A, &path("oss://bucket/a"), b"file".to_vec())
        .await
        .unwrap();
    invalid(
        f.objects
            .put_bytes(A, &path("oss://bucket/a/b"), b"x".to_vec())
            .await,
    );
    f.objects
        .put_bytes(A, &path("oss://bucket/d/e"), b"x".to_vec())
        .await
        .unwrap();
    invalid(
        f.objects
            .put_bytes(A, &path("oss://bucket/d"), b"x".to_vec())
            .await,
    );
    not_found(f.objects.head(A, &path("oss://bucket/d")).await);
}

#[tokio::test]
async fn md5_records_are_checked_and_rebuilt() {
    let f = fixture().await;
    let p = path("oss://bucket/obj");
    f.objects
        .put_bytes(A, &p, b"version one".to_vec())
        .await
        .unwrap();
    let record = f.root().join("meta/bucket/obj");
    assert!(record.is_file());
    // A lost record is rebuilt by reading the object.
    std::fs::remove_file(&record).unwrap();
    assert_eq!(
        f.objects.head(A, &p).await.unwrap().md5_hex,
        md5_hex(b"version one")
    );
    assert!(record.is_file());
    // A stale record (the object changed behind it, as after a crash between the two writes)
    // is detected by its entity tag and not trusted.
    let stale = std::fs::read(&record).unwrap();
    f.objects
        .put_bytes(A, &p, b"version two!".to_vec())
        .await
        .unwrap();
    std::fs::write(&record, stale).unwrap();
    assert_eq!(
        f.objects.head(A, &p).await.unwrap(),
        ObjectInfo {
            size: 12,
            md5_hex: md5_hex(b"version two!")
        }
    );
    let (info, _) = f.objects.open(&p).await.unwrap();
    assert_eq!(info.md5_hex, md5_hex(b"version two!"));
    // A garbage record is ignored too.
    std::fs::write(&record, b"garbage").unwrap();
    assert_eq!(
        f.objects.head(A, &p).await.unwrap().md5_hex,
        md5_hex(b"version two!")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_leave_one_consistent_object() {
    let f = Arc::new(fixture().await);
    let p = path("oss://bucket/race");
    let mut tasks = Vec::new();
    for n in 0..8u8 {
        let f = f.clone();
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let data = vec![n; 100_000 + n as usize];
            f.objects.put_bytes(A, &p, data).await.unwrap()
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap());
    }
    let copy = f.file("copy");
    let got = f.objects.get_to_file(A, &p, &copy).await.unwrap();
    assert!(written.contains(&got));
    assert_eq!(md5_of_file(&copy), got.md5_hex);
    assert_eq!(f.objects.head(A, &p).await.unwrap(), got);
}

#[tokio::test]
async fn signed_links() {
    let f = fixture().await;
    let p = path("oss://media/dir/a b+c/中.apk");
    let link = f.objects.link(&p, Duration::from_secs(600));
    let (base, query) = link.split_once('?').unwrap();
    assert_eq!(
        base,
        format!("{URL}/files/media/dir/a%20b%2Bc/%E4%B8%AD.apk"),
        "one slash after the host, key encoded per segment"
    );
    let mut expires = 0i64;
    let mut signature = String::new();
    for pair in query.split('&') {
        match pair.split_once('=').unwrap() {
            ("Expires", v) => expires = v.parse().unwrap(),
            ("Signature", v) => signature = v.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now + 599..=now + 601).contains(&expires), "{expires}");
    let ok = |b: &str, k: &str, e: i64, s: &str, at: i64| f.objects.verify_link(b, k, e, s, at);
    assert!(ok("media", &p.key, expires, &signature, now));
    assert!(
        ok("media", &p.key, expires, &signature, expires),
        "last second"
    );
    assert!(
        !ok("media", &p.key, expires, &signature, expires + 1),
        "expired"
    );
    assert!(!ok("medib", &p.key, expires, &signature, now), "bucket");
    assert!(
        !ok("media", "dir/a b+c/中.apj", expires, &signature, now),
        "key"
    );
    assert!(
        !ok(
            "media",
            "dir/a%20b%2Bc/%E4%B8%AD.apk",
            expires,
            &signature,
            now
        ),
        "encoded key"
    );
    assert!(
        !ok("media", &p.key, expires + 3600, &signature, now),
        "expires"
    );
    let mut altered = signature.clone().into_bytes();
    altered[10] = if altered[10] == b'0' { b'1' } else { b'0' };
    let altered = String::from_utf8(altered).unwrap();
    assert!(!ok("media", &p.key, expires, &altered, now), "signature");
    assert!(!ok("media", &p.key, expires, "", now));
    assert!(!ok("media", &p.key, expires, "not hex", now));
    // An already expired link.
    let old = f.objects.link_expiring_at(&p, now - 1);
    let sig = old.rsplit_once("Signature=").unwrap().1;
    assert!(!ok("media", &p.key, now - 1, sig, now));
    assert!(ok("media", &p.key, now - 1, sig, now - 1));
    // Another key (another server) does not accept it.
    let other = Objects::local(
        f.dir.path().join("other"),
        f.store.clone(),
        b"another-key",
        URL.into(),
    )
    .unwrap();
    assert!(!other.verify_link("media", &p.key, expires, &signature, now));
}

#[tokio::test]
async fn staging_dir_is_beside_the_objects() {
    let f = fixture().await;
    let staging = f.objects.staging_dir();
    assert!(staging.is_dir());
    assert!(staging.starts_with(f.root()));
    // Objects never land in it.
    f.objects
        .put_bytes(A, &path("oss://bucket/.staging"), b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
}
