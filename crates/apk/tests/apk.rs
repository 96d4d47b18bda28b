//! End to end through the public API: manifests and APKs written by `cloudphone_apk::testing` read
//! back field for field; documents Android accepts are accepted; and malformed input of every
//! kind (not a zip, no manifest, truncated, garbled, hostile sizes, zip bombs) is an error, quickly,
//! never a panic.

use std::path::Path;
use std::time::{Duration, Instant};

use cloudphone_apk::testing::{
    self, ATTR_LABEL, ATTR_NAME, Attr, AxmlBuilder, ManifestSpec, Value,
};
use cloudphone_apk::{ApkError, ApkInfo, MAX_MANIFEST_BYTES, read_apk, read_manifest};

fn weather(utf8: bool) -> ManifestSpec {
    let mut spec = ManifestSpec::new("com.example.weather");
    spec.version_code = Some(42);
    spec.version_name = Some("1.4.2-beta".into());
    spec.label = Some("Weather ☀ 天気 🌦".into());
    spec.min_sdk = Some(24);
    spec.utf8 = utf8;
    spec
}

fn weather_info() -> ApkInfo {
    ApkInfo {
        package: "com.example.weather".into(),
        version_name: Some("1.4.2-beta".into()),
        version_code: Some(42),
        label: Some("Weather ☀ 天気 🌦".into()),
        min_sdk: Some(24),
    }
}

fn is_bad_manifest(result: &Result<ApkInfo, ApkError>) -> bool {
    matches!(result, Err(ApkError::BadManifest(_)))
}

/// `(offset, type)` of the chunks after the document header.
fn chunks(doc: &[u8]) -> Vec<(usize, u16)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= doc.len() {
        let kind = u16::from_le_bytes([doc[at], doc[at + 1]]);
        let size = u32::from_le_bytes(doc[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push((at, kind));
        at += size;
    }
    out
}

fn put32(doc: &mut [u8], at: usize, value: u32) {
    doc[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn manifest_fields_round_trip_with_utf16_and_utf8_pools() {
    for utf8 in [false, true] {
        let doc = weather(utf8).encode();
        assert_eq!(read_manifest(&doc), Ok(weather_info()), "utf8 = {utf8}");
    }
}

#[test]
fn apk_round_trip_through_a_zip_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weather.apk");
    testing::apk_with_manifest(&path, &weather(false).encode()).unwrap();
    assert_eq!(read_apk(&path), Ok(weather_info()));

    // The one-call helpers other crates use; a code above 32 bits goes through versionCodeMajor.
    let path = dir.path().join("simple.apk");
    testing::apk(&path, "org.example.notes", (3 << 32) | 7, "3.0.7").unwrap();
    assert_eq!(
        read_apk(&path),
        Ok(ApkInfo {
            package: "org.example.notes".into(),
            version_name: Some("3.0.7".into()),
            version_code: Some((3 << 32) | 7),
            label: None,
            min_sdk: None,
        })
    );
    assert_eq!(
        read_manifest(&testing::manifest("a.b", 1, "1")).map(|info| info.version_code),
        Ok(Some(1))
    );
}

#[test]
fn values_keep_their_types() {
    // A hexadecimal versionCode using all 32 bits, with a major.
    let mut spec = ManifestSpec::new("com.example.hex");
    spec.version_code = Some((1 << 32) | 0xffff_fffe);
    spec.version_code_hex = true;
    assert_eq!(
        read_manifest(&spec.encode()).unwrap().version_code,
        Some((1 << 32) | 0xffff_fffe)
    );

    // A label that is a @string reference cannot be resolved without resources.arsc.
    let mut spec = weather(false);
    spec.label_reference = Some(0x7f0e_0001);
    assert_eq!(read_manifest(&spec.encode()).unwrap().label, None);

    // Nothing optional present.
    assert_eq!(
        read_manifest(&ManifestSpec::new("com.example.bare").encode()),
        Ok(ApkInfo {
            package: "com.example.bare".into(),
            version_name: None,
            version_code: None,
            label: None,
            min_sdk: None,
        })
    );
}

#[test]
fn long_strings_use_the_long_length_forms() {
    // UTF-16: more than 0x7fff units takes the two-unit length. UTF-8: more than 0x7f units or
    // bytes takes two-byte lengths.
    let mut spec = weather(false);
    spec.version_name = Some("v".repeat(40_000));
    assert_eq!(
        read_manifest(&spec.encode())
            .unwrap()
            .version_name
            .map(|v| v.len()),
        Some(40_000)
    );
    let mut spec = weather(true);
    let label = "é".repeat(5_000);
    spec.label = Some(label.clone());
    assert_eq!(read_manifest(&spec.encode()).unwrap().label, Some(label));
}

#[test]
fn documents_android_accepts_are_accepted() {
    // An unknown chunk before the string pool, padding between attribute records, an unknown node
    // type among the nodes, and attributes named only by namespace and name (no resource id).
    let mut axml = AxmlBuilder::new();
    let mut unknown = vec![0x42, 0x00, 0x08, 0x00, 0x10, 0x00, 0x00, 0x00];
    unknown.extend_from_slice(&[0xee; 8]);
    axml.chunk_before_pool(unknown).attribute_size(28);
    axml.start_namespace("android", testing::ANDROID_NS);
    axml.start_element(
        "manifest",
        vec![
            Attr::plain("package", Value::String("net.example.odd".into())),
            Attr::android_unmapped("versionCode", Value::Dec(9)),
            Attr::android_unmapped("versionName", Value::String("nine".into())),
        ],
    );
    let mut node = vec![0x70, 0x01, 0x10, 0x00, 0x18, 0x00, 0x00, 0x00];
    node.extend_from_slice(&[0; 16]);
    axml.raw_node(node);
    axml.start_element(
        "uses-sdk",
        vec![Attr::android_unmapped("minSdkVersion", Value::Hex(21))],
    );
    axml.end_element("uses-sdk");
    axml.start_element(
        "application",
        vec![Attr::android_unmapped("label", Value::String("Odd".into()))],
    );
    axml.end_element("application");
    axml.end_element("manifest");
    axml.end_namespace("android", testing::ANDROID_NS);
    assert_eq!(
        read_manifest(&axml.finish()),
        Ok(ApkInfo {
            package: "net.example.odd".into(),
            version_name: Some("nine".into()),
            version_code: Some(9),
            label: Some("Odd".into()),
            min_sdk: Some(21),
        })
    );
}

#[test]
fn attributes_are_identified_by_resource_id_first() {
    // The string says "label" but the resource map says android:name: Android reads it as the
    // name, and so do we; the real label (by id) is found under another string.
    let mut axml = AxmlBuilder::new();
    axml.start_element(
        "manifest",
        vec![Attr::plain(
            "package",
            Value::String("com.example.ids".into()),
        )],
    );
    axml.start_element(
        "application",
        vec![
            Attr::android("label", ATTR_NAME, Value::String("not the label".into())),
            Attr::android("x", ATTR_LABEL, Value::String("the label".into())),
        ],
    );
    axml.end_element("application");
    axml.end_element("manifest");
    assert_eq!(
        read_manifest(&axml.finish()).unwrap().label.as_deref(),
        Some("the label")
    );
}

#[test]
fn wrong_documents_are_bad_manifests() {
    let with_root = |root: &str, package: &str| {
        let mut axml = AxmlBuilder::new();
        axml.start_element(
            root,
            vec![Attr::plain("package", Value::String(package.into()))],
        );
        axml.end_element(root);
        axml.finish()
    };
    assert!(read_manifest(&with_root("manifest", "com.example.fine")).is_ok());
    for (doc, why) in [
        (
            with_root("application", "com.example.fine"),
            "root not <manifest>",
        ),
        (with_root("manifest", "nodot"), "package without '.'"),
        (
            with_root("manifest", "com.example/../../etc"),
            "package with '/'",
        ),
        (
            with_root("manifest", "com.1example"),
            "segment starting with a digit",
        ),
        (with_root("manifest", ""), "empty package"),
        (ManifestSpec::new("x").encode(), "single-segment package"),
        (
            b"<?xml version=\"1.0\"?><manifest package=\"a.b\"/>".to_vec(),
            "text XML",
        ),
        (Vec::new(), "empty"),
        (vec![3, 0, 8, 0], "four bytes"),
    ] {
        let result = read_manifest(&doc);
        assert!(is_bad_manifest(&result), "{why}: {result:?}");
    }
    let mut no_package = AxmlBuilder::new();
    no_package
        .start_element("manifest", vec![])
        .end_element("manifest");
    assert!(is_bad_manifest(&read_manifest(&no_package.finish())));
    let mut unbalanced = AxmlBuilder::new();
    unbalanced.end_element("manifest");
    assert!(is_bad_manifest(&read_manifest(&unbalanced.finish())));
    let oversized = vec![0; MAX_MANIFEST_BYTES + 1];
    assert!(is_bad_manifest(&read_manifest(&oversized)));
}

#[test]
fn files_that_are_not_apks() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("readme.apk");
    std::fs::write(&text, "this is not a zip archive\n".repeat(100)).unwrap();
    assert!(matches!(read_apk(&text), Err(ApkError::NotAZip(_))));
    let empty = dir.path().join("empty.apk");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(read_apk(&empty), Err(ApkError::NotAZip(_))));
    // A zip cut in half has no end-of-central-directory record.
    let whole = dir.path().join("whole.apk");
    testing::apk(&whole, "com.example.cut", 1, "1").unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.path().join("cut.apk");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(read_apk(&cut), Err(ApkError::NotAZip(_))));

    let zip = dir.path().join("plain.zip");
    testing::zip_file(&zip, &[("classes.dex", b"dex\n035\0"), ("res/a.xml", b"x")]).unwrap();
    assert_eq!(read_apk(&zip), Err(ApkError::NoManifest));
    // Android looks the entry up by its exact name.
    testing::zip_file(&zip, &[("androidmanifest.xml", &weather(false).encode())]).unwrap();
    assert_eq!(read_apk(&zip), Err(ApkError::NoManifest));
    testing::zip_file(&zip, &[("AndroidManifest.xml", b"<manifest/>")]).unwrap();
    assert!(is_bad_manifest(&read_apk(&zip)));

    assert!(matches!(
        read_apk(&dir.path().join("missing.apk")),
        Err(ApkError::Io(_))
    ));
    let result = read_apk(dir.path());
    assert!(matches!(result, Err(ApkError::Io(_))), "{result:?}");
}

#[test]
fn a_corrupted_manifest_entry_is_a_bad_manifest() {
    // Flip bytes inside the deflated manifest: inflating fails or the CRC does not match.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.apk");
    testing::apk_with_manifest(&path, &weather(false).encode()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // The first local header is the manifest's: 30 bytes + the 19-byte name, then its data.
    for byte in &mut bytes[30 + 19 + 10..30 + 19 + 20] {
        *byte ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(is_bad_manifest(&read_apk(&path)), "{:?}", read_apk(&path));
}

#[test]
fn every_truncation_is_an_error() {
    for utf8 in [false, true] {
        let doc = weather(utf8).encode();
        for len in 0..doc.len() {
            let result = read_manifest(&doc[..len]);
            assert!(
                is_bad_manifest(&result),
                "utf8 = {utf8}, {len} bytes: {result:?}"
            );
        }
    }
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbled_manifests_never_panic() {
    let originals = [weather(false).encode(), weather(true).encode()];
    // Values that hit boundaries when they land in a size, count, offset or index.
    let interesting = [
        0,
        1,
        3,
        0x7f,
        0x80,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ];
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    let (mut ok, mut bad) = (0, 0);
    let started = Instant::now();
    for round in 0..20_000 {
        let mut doc = originals[round % 2].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(doc.len());
            if rng.below(3) == 0 && at + 4 <= doc.len() {
                let aligned = at & !3;
                put32(&mut doc, aligned, interesting[rng.below(interesting.len())]);
            } else {
                doc[at] ^= 1 << rng.below(8);
            }
        }
        let result = std::panic::catch_unwind(|| read_manifest(&doc));
        match result {
            Ok(Ok(info)) => {
                ok += 1;
                assert!(info.package.contains('.'), "round {round}: {info:?}");
            }
            Ok(Err(ApkError::BadManifest(_))) => bad += 1,
            Ok(Err(other)) => panic!("round {round}: unexpected {other:?}"),
            Err(_) => panic!("round {round} panicked on {doc:02x?}"),
        }
    }
    eprintln!("{ok} garbled manifests read, {bad} rejected");
    // Most flips land in strings or values and still read; many hit structure and fail.
    assert!(ok > 1000 && bad > 1000, "ok {ok}, bad {bad}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_sizes_fail_fast() {
    let doc = weather(false).encode();
    let layout = chunks(&doc);
    let pool = layout.iter().find(|c| c.1 == 0x0001).unwrap().0;
    let map = layout.iter().find(|c| c.1 == 0x0180).unwrap().0;
    let manifest = layout.iter().find(|c| c.1 == 0x0102).unwrap().0;
    let string_count = u32::from_le_bytes(doc[pool + 8..pool + 12].try_into().unwrap());

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut patched = |why, at, value| {
        let mut doc = doc.clone();
        put32(&mut doc, at, value);
        cases.push((why, doc));
    };
    patched("document size", 4, u32::MAX);
    patched("string pool size", pool + 4, 0xffff_fff0);
    patched("string count", pool + 8, 0x3fff_ffff);
    patched("strings start", pool + 20, 0xffff_fff0);
    patched("resource map size", map + 4, 0xffff_fff0);
    patched("element size", manifest + 4, 0xffff_fff0);
    // attributeSize and attributeCount, both 0xffff.
    patched("attribute table", manifest + 16 + 8, 0xffff_0014);
    patched("attribute stride", manifest + 16 + 8, 0x0001_ffff);
    // Every string claims 0x7fffffff units.
    let mut doc_all = doc.clone();
    let strings_start = u32::from_le_bytes(doc[pool + 20..pool + 24].try_into().unwrap()) as usize;
    for i in 0..string_count as usize {
        let offset = u32::from_le_bytes(
            doc[pool + 28 + 4 * i..pool + 32 + 4 * i]
                .try_into()
                .unwrap(),
        );
        put32(
            &mut doc_all,
            pool + strings_start + offset as usize,
            0xffff_ffff,
        );
    }
    cases.push(("string lengths", doc_all));

    for (why, doc) in cases {
        let started = Instant::now();
        let result = read_manifest(&doc);
        assert!(is_bad_manifest(&result), "{why}: {result:?}");
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{why}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn one_huge_string_shared_by_every_attribute_is_decoded_once() {
    // 65535 versionName attributes all pointing at a string of a million units: a parser that
    // builds a DOM of owned strings copies it 65535 times (tens of GB); only the first is read
    // here. Built with one such attribute, whose record is then repeated.
    let mut axml = AxmlBuilder::new();
    axml.start_element(
        "manifest",
        vec![
            Attr::plain("package", Value::String("com.example.big".into())),
            Attr::android(
                "versionName",
                testing::ATTR_VERSION_NAME,
                Value::String("x".repeat(1_000_000)),
            ),
        ],
    );
    axml.end_element("manifest");
    let doc = axml.finish();
    let element = chunks(&doc).iter().find(|c| c.1 == 0x0102).unwrap().0;
    let record = element + 16 + 20 + 20; // the second attribute
    let mut big = doc[..record + 20].to_vec();
    for _ in 0..65_533 {
        big.extend_from_slice(&doc[record..record + 20]);
    }
    big.extend_from_slice(&doc[record + 20..]);
    let grown = 65_533 * 20;
    let element_size = u32::from_le_bytes(doc[element + 4..element + 8].try_into().unwrap());
    put32(&mut big, element + 4, element_size + grown);
    big[element + 16 + 12..element + 16 + 14].copy_from_slice(&u16::MAX.to_le_bytes());
    let total = big.len() as u32;
    put32(&mut big, 4, total);
    assert!(big.len() <= MAX_MANIFEST_BYTES, "{}", big.len());

    let started = Instant::now();
    let info = read_manifest(&big).unwrap();
    assert_eq!(info.version_name.map(|v| v.len()), Some(1_000_000));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_zip_bomb_manifest_is_cut_at_the_limit() {
    // 32 MiB of zeros deflate to about 32 KiB.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.apk");
    let mut bomb = weather(false).encode();
    bomb.resize(32 << 20, 0);
    testing::apk_with_manifest(&path, &bomb).unwrap();
    drop(bomb);
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    let read = |path: &Path| {
        let started = Instant::now();
        let result = read_apk(path);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        result
    };
    // The declared size alone rejects it.
    let result = read(&path);
    assert!(
        matches!(&result, Err(ApkError::BadManifest(m)) if m.contains("limit")),
        "{result:?}"
    );

    // Declared sizes that lie (1000 bytes, in the local and central headers): the read itself
    // stops (at the limit, or where the zip reader notices the lie).
    let mut bytes = std::fs::read(&path).unwrap();
    put32(&mut bytes, 22, 1000);
    let central = bytes
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    put32(&mut bytes, central + 24, 1000);
    std::fs::write(&path, &bytes).unwrap();
    let result = read(&path);
    eprintln!("lying sizes: {result:?}");
    assert!(is_bad_manifest(&result), "{result:?}");
}
