//! The object store on a real SQLite store, each case twice: on a temp directory (`local::`)
//! and on an S3-protocol server (`s3::`, a fresh prefix of the bucket `cloudphone-test` at
//! `CLOUDPHONE_TEST_S3_ENDPOINT`, which `scripts/s3-server start DIR` prints): streaming round
//! trips, one bucket namespace per account, bad paths, MD5 records, conflicts and signed links;
//! the move of the old single-namespace layout and the staging directory of the local store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudphone_objects::{ObjectError, ObjectInfo, Objects, OssPath, S3Settings};
use cloudphone_store::{SqliteStore, Store};
use futures::StreamExt;
use md5::{Digest, Md5};
use object_store::aws::AmazonS3Builder;
use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const A: &str = "acct-a";
const B: &str = "acct-b";
const URL: &str = "http://127.0.0.1:9723";
const S3_VAR: &str = "CLOUDPHONE_TEST_S3_ENDPOINT";
const S3_BUCKET: &str = "cloudphone-test";

/// Runs each named case (an `async fn(Kind)`) once on each store: `local::name`, `s3::name`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Local).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::S3).await
                }
            )*
        }
    };
}

on_both_stores!(
    round_trip_of_a_large_file,
    put_bytes_empty_objects_and_odd_names,
    every_account_has_its_own_buckets,
    bad_paths_are_refused_and_touch_nothing,
    objects_and_folders_cannot_collide,
    md5_records_are_checked_and_rebuilt,
    concurrent_writers_leave_one_consistent_object,
    signed_links,
    presigned_downloads,
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    S3,
}

struct Fixture {
    dir: tempfile::TempDir,
    objects: Objects,
    store: Arc<dyn Store>,
    /// The storage under the objects, seen directly (records, what was written).
    raw: Arc<dyn ObjectStore>,
    kind: Kind,
}

/// Hands object_store the test's client (built as the binary builds its own).
#[derive(Debug)]
struct Client(reqwest::Client);

impl HttpConnector for Client {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

fn s3_endpoint() -> String {
    std::env::var(S3_VAR).unwrap_or_else(|_| {
        panic!(
            "the S3 object tests need an S3-protocol server: run `scripts/s3-server start DIR` \
             and `export {S3_VAR}=<the URL it prints>`"
        )
    })
}

fn s3_settings(prefix: &str, presign: bool) -> S3Settings {
    S3Settings {
        bucket: S3_BUCKET.into(),
        prefix: Some(prefix.into()),
        endpoint: Some(s3_endpoint()),
        region: "us-east-1".into(),
        path_style: true,
        presign,
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        client: cloudphone_client::tls::builder(None)
            .unwrap()
            .build()
            .unwrap(),
    }
}

/// The bucket under `prefix`, reached without [`Objects`].
fn s3_raw(prefix: &str) -> Arc<dyn ObjectStore> {
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(S3_BUCKET)
        .with_region("us-east-1")
        .with_endpoint(s3_endpoint())
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_http_connector(Client(
            cloudphone_client::tls::builder(None)
                .unwrap()
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap();
    Arc::new(PrefixStore::new(s3, prefix))
}

impl Fixture {
    fn root(&self) -> PathBuf {
        self.dir.path().join("objects")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Every key stored under `top`.
    async fn keys_under(&self, top: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .raw
            .list(Some(&StorePath::from(top)))
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await;
        keys.sort();
        keys
    }
}

async fn fixture(kind: Kind) -> Fixture {
    fixture_with(kind, false).await
}

async fn fixture_with(kind: Kind, presign: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("cloudphone.db"))
            .await
            .unwrap(),
    );
    let (objects, raw): (Objects, Arc<dyn ObjectStore>) = match kind {
        Kind::Local => {
            let root = dir.path().join("objects");
            let objects = Objects::local(root.clone(), &*store, b"link-key", format!("{URL}/"))
                .await
                .unwrap();
            (
                objects,
                Arc::new(LocalFileSystem::new_with_prefix(&root).unwrap()),
            )
        }
        Kind::S3 => {
            let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
            let objects = Objects::s3(
                &s3_settings(&prefix, presign),
                dir.path().join("tmp/uploads"),
                b"link-key",
                format!("{URL}/"),
            )
            .await
            .unwrap();
            (objects, s3_raw(&prefix))
        }
    };
    Fixture {
        dir,
        objects,
        store,
        raw,
        kind,
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

async fn round_trip_of_a_large_file(kind: Kind) {
    let f = fixture(kind).await;
    let data = pseudo_random(20 * 1024 * 1024 + 12_345, 7);
    let source = f.file("source.bin");
    std::fs::write(&source, &data).unwrap();
    let expected = ObjectInfo {
        size: data.len() as u64,
        md5_hex: md5_hex(&data),
    };
    let p = path("oss://media-a/dir/big file.bin");
    assert_eq!(f.objects.put_file(A, &p, &source).await.unwrap(), expected);
    // Nothing is recorded in the store: the bucket is A's by being in A's namespace.
    assert_eq!(f.store.bucket_owner("media-a").await.unwrap(), None);
    assert_eq!(f.objects.head(A, &p).await.unwrap(), expected);

    let copy = f.file("copy.bin");
    assert_eq!(f.objects.get_to_file(A, &p, &copy).await.unwrap(), expected);
    assert_eq!(md5_of_file(&copy), expected.md5_hex);
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), expected.size);

    // The stream of `open` holds the same bytes, in bounded chunks.
    let (info, mut stream) = f.objects.open(A, &p).await.unwrap();
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

async fn put_bytes_empty_objects_and_odd_names(kind: Kind) {
    let f = fixture(kind).await;
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

async fn every_account_has_its_own_buckets(kind: Kind) {
    let f = fixture(kind).await;
    let p = path("oss://shared-name/secret.txt");
    f.objects.put_bytes(A, &p, b"mine".to_vec()).await.unwrap();
    let copy = f.file("copy");
    // For B, A's objects do not exist: the same name in B's namespace is empty.
    not_found(f.objects.head(B, &p).await);
    not_found(f.objects.get_to_file(B, &p, &copy).await);
    not_found(f.objects.open(B, &p).await.map(|(info, _)| info));
    assert!(!copy.exists());
    // B writing the same path makes an object of its own, and A's is untouched.
    f.objects
        .put_bytes(B, &p, b"theirs".to_vec())
        .await
        .unwrap();
    let local = f.file("local");
    std::fs::write(&local, b"theirs, streamed").unwrap();
    f.objects
        .put_file(B, &path("oss://shared-name/new.txt"), &local)
        .await
        .unwrap();
    f.objects.get_to_file(A, &p, &copy).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"mine");
    f.objects.get_to_file(B, &p, &copy).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"theirs");
    not_found(f.objects.head(A, &path("oss://shared-name/new.txt")).await);
    // A missing object and an unknown bucket look the same.
    not_found(f.objects.head(A, &path("oss://shared-name/missing")).await);
    not_found(f.objects.head(A, &path("oss://no-such-bucket/x")).await);
    not_found(
        f.objects
            .get_to_file(A, &path("oss://no-such-bucket/x"), &copy)
            .await,
    );
    not_found(
        f.objects
            .open(A, &path("oss://shared-name/missing"))
            .await
            .map(|(i, _)| i),
    );
    // Account ids that are not plain names stay inside the namespace directory.
    for account in [".", "..", "a/b"] {
        f.objects
            .put_bytes(account, &path("oss://odd/x"), account.as_bytes().to_vec())
            .await
            .unwrap();
    }
    assert!(!f.root().join("odd").exists() && !f.dir.path().join("odd").exists());
    assert!(!f.root().join("objects/a").exists());
    assert!(f.keys_under("odd").await.is_empty());
    assert!(f.keys_under("objects/a").await.is_empty());
    f.objects
        .get_to_file(".", &path("oss://odd/x"), &copy)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b".");
    invalid(f.objects.head("", &p).await);
}

/// The layout of earlier versions: `data/<bucket>/<key>` and `meta/<bucket>/<key>`, with the
/// bucket's first writer in the store.
fn write_old_layout(root: &Path, bucket: &str, key: &str, content: &[u8]) {
    let data = root.join("data").join(bucket).join(key);
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, content).unwrap();
    let meta = root.join("meta").join(bucket).join(key);
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    std::fs::write(&meta, b"stale record").unwrap();
}

#[tokio::test]
async fn the_old_single_namespace_layout_moves_under_each_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("cloudphone.db"))
            .await
            .unwrap(),
    );
    let root = dir.path().join("objects");
    write_old_layout(&root, "media-a", "dir/app.apk", b"A's app");
    write_old_layout(&root, "media-b", "out.txt", b"B's output");
    write_old_layout(&root, "nobodys", "x", b"no owner recorded");
    store.claim_bucket("media-a", A).await.unwrap();
    store.claim_bucket("media-b", B).await.unwrap();
    // A crash in an earlier move left media-b's records moved but not its data.
    let moved = root.join("records").join(B);
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::rename(root.join("meta/media-b"), moved.join("media-b")).unwrap();

    let objects = Objects::local(root.clone(), &*store, b"k", URL.into())
        .await
        .unwrap();
    let copy = dir.path().join("copy");
    objects
        .get_to_file(A, &path("oss://media-a/dir/app.apk"), &copy)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"A's app");
    let info = objects
        .head(B, &path("oss://media-b/out.txt"))
        .await
        .unwrap();
    assert_eq!(
        info.md5_hex,
        md5_hex(b"B's output"),
        "the stale record is not trusted"
    );
    not_found(objects.head(B, &path("oss://media-a/dir/app.apk")).await);
    not_found(objects.head(A, &path("oss://media-b/out.txt")).await);
    // A bucket with no recorded owner is left where it was, for someone to look at.
    assert!(root.join("data/nobodys/x").is_file());
    assert!(!root.join("data/media-a").exists() && !root.join("meta/media-a").exists());
    assert!(!root.join("data/media-b").exists());

    // Starting again moves nothing more and loses nothing.
    drop(objects);
    let objects = Objects::local(root.clone(), &*store, b"k", URL.into())
        .await
        .unwrap();
    objects
        .get_to_file(A, &path("oss://media-a/dir/app.apk"), &copy)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"A's app");
    assert!(root.join("data/nobodys/x").is_file());
}

async fn bad_paths_are_refused_and_touch_nothing(kind: Kind) {
    let f = fixture(kind).await;
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
        invalid(f.objects.open(A, &p).await.map(|(i, _)| i));
    }
    // Nothing was written anywhere.
    assert!(!f.dir.path().join("escape").exists());
    assert!(!f.root().join("objects").exists());
    assert!(f.keys_under("objects").await.is_empty());
    assert!(f.keys_under("records").await.is_empty());
    // A key segment longer than a file name can be is a clear error, not an I/O failure.
    let long = OssPath::new("bucket", &"n".repeat(600)).unwrap();
    invalid(f.objects.put_bytes(A, &long, b"x".to_vec()).await);
    // A missing local source is an I/O error.
    let missing = f.file("missing");
    assert!(matches!(
        f.objects
            .put_file(A, &path("oss://bucket/x"), &missing)
            .await,
        Err(ObjectError::Io(_))
    ));
    assert!(!copy.exists());
}

async fn objects_and_folders_cannot_collide(kind: Kind) {
    let f = fixture(kind).await;
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

async fn md5_records_are_checked_and_rebuilt(kind: Kind) {
    let f = fixture(kind).await;
    let p = path("oss://bucket/obj");
    f.objects
        .put_bytes(A, &p, b"version one".to_vec())
        .await
        .unwrap();
    let record = StorePath::from_iter(["records", A, "bucket", "obj"]);
    if f.kind == Kind::Local {
        assert!(
            f.root()
                .join("records")
                .join(A)
                .join("bucket/obj")
                .is_file()
        );
    }
    f.raw.head(&record).await.unwrap();
    // A lost record is rebuilt by reading the object.
    f.raw.delete(&record).await.unwrap();
    assert_eq!(
        f.objects.head(A, &p).await.unwrap().md5_hex,
        md5_hex(b"version one")
    );
    f.raw.head(&record).await.unwrap();
    // A stale record (the object changed behind it, as after a crash between the two writes)
    // is detected by its entity tag and not trusted.
    let stale = f.raw.get(&record).await.unwrap().bytes().await.unwrap();
    f.objects
        .put_bytes(A, &p, b"version two!".to_vec())
        .await
        .unwrap();
    f.raw.put(&record, PutPayload::from(stale)).await.unwrap();
    assert_eq!(
        f.objects.head(A, &p).await.unwrap(),
        ObjectInfo {
            size: 12,
            md5_hex: md5_hex(b"version two!")
        }
    );
    let (info, _) = f.objects.open(A, &p).await.unwrap();
    assert_eq!(info.md5_hex, md5_hex(b"version two!"));
    // A garbage record is ignored too.
    f.raw
        .put(&record, PutPayload::from_static(b"garbage"))
        .await
        .unwrap();
    assert_eq!(
        f.objects.head(A, &p).await.unwrap().md5_hex,
        md5_hex(b"version two!")
    );
}

async fn concurrent_writers_leave_one_consistent_object(kind: Kind) {
    let f = Arc::new(fixture(kind).await);
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

async fn signed_links(kind: Kind) {
    let f = fixture(kind).await;
    let p = path("oss://media/dir/a b+c/中.apk");
    let link = f.objects.link(A, &p, Duration::from_secs(600));
    let (base, query) = link.split_once('?').unwrap();
    assert_eq!(
        base,
        format!("{URL}/files/media/dir/a%20b%2Bc/%E4%B8%AD.apk"),
        "one slash after the host, key encoded per segment"
    );
    let mut expires = 0i64;
    let mut signature = String::new();
    let mut account = String::new();
    for pair in query.split('&') {
        match pair.split_once('=').unwrap() {
            ("Account", v) => account = v.to_string(),
            ("Expires", v) => expires = v.parse().unwrap(),
            ("Signature", v) => signature = v.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(account, A);
    assert!(
        f.objects
            .link(".a b", &p, Duration::from_secs(1))
            .contains("?Account=.a%20b&"),
        "the account is encoded"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now + 599..=now + 601).contains(&expires), "{expires}");
    let ok = |b: &str, k: &str, e: i64, s: &str, at: i64| f.objects.verify_link(A, b, k, e, s, at);
    assert!(ok("media", &p.key, expires, &signature, now));
    assert!(
        ok("media", &p.key, expires, &signature, expires),
        "last second"
    );
    assert!(
        !ok("media", &p.key, expires, &signature, expires + 1),
        "expired"
    );
    assert!(
        !f.objects
            .verify_link(B, "media", &p.key, expires, &signature, now),
        "another account's namespace"
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
    let old = f.objects.link_expiring_at(A, &p, now - 1);
    let sig = old.rsplit_once("Signature=").unwrap().1;
    assert!(!ok("media", &p.key, now - 1, sig, now));
    assert!(ok("media", &p.key, now - 1, sig, now - 1));
    // Another key (another server) does not accept it.
    let other = Objects::local(
        f.dir.path().join("other"),
        &*f.store,
        b"another-key",
        URL.into(),
    )
    .await
    .unwrap();
    assert!(!other.verify_link(A, "media", &p.key, expires, &signature, now));
}

#[tokio::test]
async fn staging_dir_is_beside_the_objects() {
    let f = fixture(Kind::Local).await;
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

/// A link may send the client straight to the service (S3 with `presign`): a presigned GET of
/// the object, and nothing for a missing one; never on a local store or with presign off.
async fn presigned_downloads(kind: Kind) {
    let f = fixture_with(kind, true).await;
    let p = path("oss://media/dir/a b.bin");
    let data = pseudo_random(300_000, 3);
    f.objects.put_bytes(A, &p, data.clone()).await.unwrap();
    let url = f.objects.presigned_get(A, &p).await.unwrap();
    if kind == Kind::Local {
        assert_eq!(url, None);
        return;
    }
    let url = url.expect("a presigned URL");
    assert!(url.starts_with(&s3_endpoint()), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let client = cloudphone_client::tls::builder(None)
        .unwrap()
        .build()
        .unwrap();
    let got = client.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &data[..]);
    not_found(
        f.objects
            .presigned_get(A, &path("oss://media/missing"))
            .await,
    );
    not_found(f.objects.presigned_get(B, &p).await);
    // Without `presign` the node serves the bytes itself.
    let plain = fixture_with(kind, false).await;
    plain.objects.put_bytes(A, &p, data).await.unwrap();
    assert_eq!(plain.objects.presigned_get(A, &p).await.unwrap(), None);
}

/// S3 uploads are staged in the directory the node gives (its `tmp/uploads`), and a start
/// removes staging files left by a crash.
#[tokio::test]
async fn s3_staging_is_the_given_directory() {
    let f = fixture(Kind::S3).await;
    assert_eq!(f.objects.staging_dir(), f.dir.path().join("tmp/uploads"));
    assert!(f.objects.staging_dir().is_dir());
}

/// A bucket that is not there fails the start, naming the store.
#[tokio::test]
async fn s3_missing_bucket_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = s3_settings("x", false);
    settings.bucket = "no-such-bucket-here".into();
    let e = Objects::s3(&settings, dir.path().join("up"), b"k", URL.into())
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("s3://no-such-bucket-here/x") && message.contains("listing the bucket"),
        "{message}"
    );
    assert!(
        !message.contains("testing"),
        "no credentials in messages: {message}"
    );
}

/// The node's own files live under `internal/`, which no `oss://` path of any account reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_files_are_out_of_reach_of_paths() {
    for kind in [Kind::Local, Kind::S3] {
        let f = fixture(kind).await;
        let internal = f.objects.internal();
        internal
            .put(
                &StorePath::from("sim/phone-1/state.json"),
                PutPayload::from_static(b"{}"),
            )
            .await
            .unwrap();
        assert_eq!(
            f.keys_under("internal").await,
            ["internal/sim/phone-1/state.json"]
        );
        not_found(
            f.objects
                .head(A, &path("oss://internal/sim/phone-1/state.json"))
                .await,
        );
        not_found(
            f.objects
                .head("internal", &path("oss://sim/phone-1/state.json"))
                .await,
        );
    }
}
