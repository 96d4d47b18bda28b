//! Builds genuine binary `AndroidManifest.xml` documents and APK archives, for tests (feature
//! `test-support`): no Android SDK is available offline and binary fixtures in the repository
//! say nothing about what they contain, so tests generate what they upload.
//!
//! The output follows what `aapt2` writes: an `RES_XML_TYPE` document holding a string pool
//! (UTF-16 by default, UTF-8 on request), a resource map giving the framework ids of the
//! `android:` attribute names (which come first in the pool), then namespace and element nodes.
//! [`AxmlBuilder`] also writes the odd but legal documents the parser has to accept.
//!
//! - [`manifest`] / [`apk`]: the common case in one call.
//! - [`ManifestSpec`]: every field [`crate::ApkInfo`] reads, with the string pool encoding.
//! - [`AxmlBuilder`]: any element tree with typed attribute values.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use zip::ZipWriter;
use zip::write::SimpleFileOptions;

use crate::axml::{NO_STRING, TYPE_REFERENCE, TYPE_STRING, UTF8_FLAG};

/// `Res_value::TYPE_INT_DEC` and `TYPE_INT_HEX`.
const TYPE_INT_DEC: u8 = 0x10;
const TYPE_INT_HEX: u8 = 0x11;

pub use crate::axml::ANDROID_NS;
pub use crate::axml::{
    ATTR_LABEL, ATTR_MIN_SDK_VERSION, ATTR_VERSION_CODE, ATTR_VERSION_CODE_MAJOR, ATTR_VERSION_NAME,
};

/// `android:name` (0x01010003): on activities, never to be confused with the label.
pub const ATTR_NAME: u32 = 0x0101_0003;
/// `android:targetSdkVersion`.
pub const ATTR_TARGET_SDK_VERSION: u32 = 0x0101_0270;

/// A binary manifest for `package` with `version_code` (its high 32 bits written as
/// `android:versionCodeMajor` when not zero) and `version_name`.
pub fn manifest(package: &str, version_code: u64, version_name: &str) -> Vec<u8> {
    let mut spec = ManifestSpec::new(package);
    spec.version_code = Some(version_code);
    spec.version_name = Some(version_name.to_owned());
    spec.encode()
}

/// Writes at `path` an APK whose manifest is [`manifest`]`(package, version_code, version_name)`.
pub fn apk(path: &Path, package: &str, version_code: u64, version_name: &str) -> io::Result<()> {
    apk_with_manifest(path, &manifest(package, version_code, version_name))
}

/// Writes at `path` an APK with this `AndroidManifest.xml` (deflated, as in real APKs), a junk
/// `classes.dex` and a `META-INF/MANIFEST.MF`.
pub fn apk_with_manifest(path: &Path, manifest: &[u8]) -> io::Result<()> {
    let mut dex = b"dex\n035\0".to_vec();
    dex.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    zip_file(
        path,
        &[
            ("AndroidManifest.xml", manifest),
            ("classes.dex", &dex),
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\n\r\n"),
        ],
    )
}

/// Writes at `path` a zip of these `(name, contents)` entries, deflated.
pub fn zip_file(path: &Path, entries: &[(&str, &[u8])]) -> io::Result<()> {
    let mut zip = ZipWriter::new(File::create(path)?);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, contents) in entries {
        zip.start_file(*name, options).map_err(io::Error::other)?;
        zip.write_all(contents)?;
    }
    zip.finish().map_err(io::Error::other)?.sync_all()
}

/// Every field the reader returns, and how to encode them.
#[derive(Clone, Debug)]
pub struct ManifestSpec {
    pub package: String,
    /// Low 32 bits as `android:versionCode`; high 32 bits as `android:versionCodeMajor` when set.
    pub version_code: Option<u64>,
    /// Write `versionCode` as a hexadecimal integer (`TYPE_INT_HEX`) rather than decimal.
    pub version_code_hex: bool,
    pub version_name: Option<String>,
    /// `<application android:label>` as a literal string.
    pub label: Option<String>,
    /// `<application android:label>` as a reference to a string resource (wins over `label`).
    pub label_reference: Option<u32>,
    pub min_sdk: Option<u32>,
    /// A UTF-8 string pool instead of UTF-16.
    pub utf8: bool,
}

impl ManifestSpec {
    pub fn new(package: &str) -> ManifestSpec {
        ManifestSpec {
            package: package.to_owned(),
            version_code: None,
            version_code_hex: false,
            version_name: None,
            label: None,
            label_reference: None,
            min_sdk: None,
            utf8: false,
        }
    }

    /// The builder holding this manifest's tree, for tests that change it further.
    pub fn builder(&self) -> AxmlBuilder {
        let mut axml = AxmlBuilder::new();
        axml.utf8(self.utf8);
        let mut manifest = Vec::new();
        if let Some(code) = self.version_code {
            let low = code as u32;
            manifest.push(Attr::android(
                "versionCode",
                ATTR_VERSION_CODE,
                if self.version_code_hex {
                    Value::Hex(low)
                } else {
                    Value::Dec(low)
                },
            ));
            let major = (code >> 32) as u32;
            if major != 0 {
                manifest.push(Attr::android(
                    "versionCodeMajor",
                    ATTR_VERSION_CODE_MAJOR,
                    Value::Dec(major),
                ));
            }
        }
        if let Some(name) = &self.version_name {
            manifest.push(Attr::android(
                "versionName",
                ATTR_VERSION_NAME,
                Value::String(name.clone()),
            ));
        }
        manifest.push(Attr::plain("package", Value::String(self.package.clone())));
        axml.start_namespace("android", ANDROID_NS);
        axml.start_element("manifest", manifest);
        if let Some(sdk) = self.min_sdk {
            axml.start_element(
                "uses-sdk",
                vec![
                    Attr::android("minSdkVersion", ATTR_MIN_SDK_VERSION, Value::Dec(sdk)),
                    Attr::android("targetSdkVersion", ATTR_TARGET_SDK_VERSION, Value::Dec(34)),
                ],
            );
            axml.end_element("uses-sdk");
        }
        let label = match (self.label_reference, &self.label) {
            (Some(id), _) => Some(Value::Reference(id)),
            (None, Some(text)) => Some(Value::String(text.clone())),
            (None, None) => None,
        };
        let application = label
            .map(|label| vec![Attr::android("label", ATTR_LABEL, label)])
            .unwrap_or_default();
        axml.start_element("application", application);
        axml.start_element(
            "activity",
            vec![Attr::android(
                "name",
                ATTR_NAME,
                Value::String(".MainActivity".into()),
            )],
        );
        axml.end_element("activity");
        axml.end_element("application");
        axml.end_element("manifest");
        axml.end_namespace("android", ANDROID_NS);
        axml
    }

    pub fn encode(&self) -> Vec<u8> {
        self.builder().finish()
    }
}

/// A typed attribute value (`Res_value`).
#[derive(Clone, Debug)]
pub enum Value {
    String(String),
    /// `TYPE_INT_DEC`.
    Dec(u32),
    /// `TYPE_INT_HEX`.
    Hex(u32),
    /// `TYPE_REFERENCE` to a resource id, such as `@string/app_name` (0x7f......).
    Reference(u32),
}

/// One attribute of an element.
#[derive(Clone, Debug)]
pub struct Attr {
    pub namespace: Option<String>,
    pub name: String,
    /// The resource id recorded for the name in the resource map.
    pub id: Option<u32>,
    pub value: Value,
}

impl Attr {
    /// `android:<name>` with its framework id, as aapt2 writes it.
    pub fn android(name: &str, id: u32, value: Value) -> Attr {
        Attr {
            namespace: Some(ANDROID_NS.to_owned()),
            name: name.to_owned(),
            id: Some(id),
            value,
        }
    }

    /// `android:<name>` without a resource id: recognised by namespace and name only.
    pub fn android_unmapped(name: &str, value: Value) -> Attr {
        Attr {
            id: None,
            ..Attr::android(name, 0, value)
        }
    }

    /// An attribute without namespace, like `package`.
    pub fn plain(name: &str, value: Value) -> Attr {
        Attr {
            namespace: None,
            name: name.to_owned(),
            id: None,
            value,
        }
    }
}

#[derive(Clone, Debug)]
enum Event {
    StartNamespace(String, String),
    EndNamespace(String, String),
    Start(String, Vec<Attr>),
    End(String),
    Raw(Vec<u8>),
}

/// Writes an Android binary XML document from a sequence of nodes.
#[derive(Clone, Debug, Default)]
pub struct AxmlBuilder {
    utf8: bool,
    attribute_size: Option<u16>,
    before_pool: Vec<Vec<u8>>,
    events: Vec<Event>,
}

impl AxmlBuilder {
    pub fn new() -> AxmlBuilder {
        AxmlBuilder::default()
    }

    /// A UTF-8 string pool instead of UTF-16.
    pub fn utf8(&mut self, utf8: bool) -> &mut Self {
        self.utf8 = utf8;
        self
    }

    /// The stride of attribute records (at least 20; more leaves padding between them, which
    /// Android honours).
    pub fn attribute_size(&mut self, size: u16) -> &mut Self {
        self.attribute_size = Some(size);
        self
    }

    /// A raw chunk written before the string pool (Android skips unknown ones).
    pub fn chunk_before_pool(&mut self, chunk: Vec<u8>) -> &mut Self {
        self.before_pool.push(chunk);
        self
    }

    pub fn start_namespace(&mut self, prefix: &str, uri: &str) -> &mut Self {
        self.events
            .push(Event::StartNamespace(prefix.into(), uri.into()));
        self
    }

    pub fn end_namespace(&mut self, prefix: &str, uri: &str) -> &mut Self {
        self.events
            .push(Event::EndNamespace(prefix.into(), uri.into()));
        self
    }

    pub fn start_element(&mut self, name: &str, attributes: Vec<Attr>) -> &mut Self {
        self.events.push(Event::Start(name.into(), attributes));
        self
    }

    pub fn end_element(&mut self, name: &str) -> &mut Self {
        self.events.push(Event::End(name.into()));
        self
    }

    /// Raw bytes among the nodes (a chunk of an unknown type, say).
    pub fn raw_node(&mut self, bytes: Vec<u8>) -> &mut Self {
        self.events.push(Event::Raw(bytes));
        self
    }

    /// The document's bytes.
    pub fn finish(&self) -> Vec<u8> {
        // Names with a resource id first, in id order, so the resource map covers them (aapt2).
        let mut mapped: Vec<(u32, String)> = self
            .events
            .iter()
            .filter_map(|event| match event {
                Event::Start(_, attributes) => Some(attributes),
                _ => None,
            })
            .flatten()
            .filter_map(|a| Some((a.id?, a.name.clone())))
            .collect();
        mapped.sort();
        mapped.dedup();
        let mut pool = Pool {
            strings: mapped.iter().map(|(_, name)| name.clone()).collect(),
            mapped: mapped.len(),
        };
        let attribute_size = self.attribute_size.unwrap_or(20);

        let mut nodes = Vec::new();
        for (line, event) in (1u32..).zip(&self.events) {
            let mut ext = Vec::new();
            let kind = match event {
                Event::StartNamespace(prefix, uri) | Event::EndNamespace(prefix, uri) => {
                    put32(&mut ext, pool.index(prefix));
                    put32(&mut ext, pool.index(uri));
                    if matches!(event, Event::StartNamespace(..)) {
                        0x0100
                    } else {
                        0x0101
                    }
                }
                Event::Start(name, attributes) => {
                    put32(&mut ext, NO_STRING);
                    put32(&mut ext, pool.index(name));
                    put16(&mut ext, 20); // attributeStart
                    put16(&mut ext, attribute_size);
                    put16(&mut ext, attributes.len() as u16);
                    ext.extend_from_slice(&[0; 6]); // id, class and style indices
                    for a in attributes {
                        put32(
                            &mut ext,
                            a.namespace
                                .as_deref()
                                .map_or(NO_STRING, |ns| pool.index(ns)),
                        );
                        let name = match a.id {
                            Some(id) => mapped.iter().position(|m| m.0 == id && m.1 == a.name),
                            None => None,
                        };
                        put32(
                            &mut ext,
                            name.map_or_else(|| pool.index(&a.name), |i| i as u32),
                        );
                        let (raw, data_type, data) = match &a.value {
                            Value::String(s) => {
                                let index = pool.index(s);
                                (index, TYPE_STRING, index)
                            }
                            Value::Dec(v) => (NO_STRING, TYPE_INT_DEC, *v),
                            Value::Hex(v) => (NO_STRING, TYPE_INT_HEX, *v),
                            Value::Reference(id) => (NO_STRING, TYPE_REFERENCE, *id),
                        };
                        put32(&mut ext, raw);
                        put16(&mut ext, 8);
                        ext.push(0);
                        ext.push(data_type);
                        put32(&mut ext, data);
                        ext.resize(
                            ext.len() + usize::from(attribute_size).saturating_sub(20),
                            0,
                        );
                    }
                    0x0102
                }
                Event::End(name) => {
                    put32(&mut ext, NO_STRING);
                    put32(&mut ext, pool.index(name));
                    0x0103
                }
                Event::Raw(bytes) => {
                    nodes.extend_from_slice(bytes);
                    continue;
                }
            };
            let mut header = Vec::new();
            put32(&mut header, line);
            put32(&mut header, NO_STRING); // comment
            nodes.extend(chunk(kind, &header, &ext));
        }

        let mut body = Vec::new();
        for extra in &self.before_pool {
            body.extend_from_slice(extra);
        }
        body.extend(string_pool(&pool.strings, self.utf8));
        if !mapped.is_empty() {
            let mut ids = Vec::new();
            for (id, _) in &mapped {
                put32(&mut ids, *id);
            }
            body.extend(chunk(0x0180, &[], &ids));
        }
        body.extend(nodes);
        chunk(0x0003, &[], &body)
    }
}

/// The strings of the document; the first `mapped` are the resource-mapped attribute names.
struct Pool {
    strings: Vec<String>,
    mapped: usize,
}

impl Pool {
    /// The index of `s` among the unmapped strings, adding it if new.
    fn index(&mut self, s: &str) -> u32 {
        let found = self.strings[self.mapped..].iter().position(|x| x == s);
        let index = found.map_or_else(
            || {
                self.strings.push(s.to_owned());
                self.strings.len() - 1
            },
            |i| self.mapped + i,
        );
        index as u32
    }
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A chunk: the 8-byte `ResChunk_header`, the rest of the header, then the body.
fn chunk(kind: u16, header: &[u8], body: &[u8]) -> Vec<u8> {
    let header_size = 8 + header.len();
    let mut out = Vec::with_capacity(header_size + body.len());
    put16(&mut out, kind);
    put16(&mut out, header_size as u16);
    put32(&mut out, (header_size + body.len()) as u32);
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

/// A `ResStringPool` chunk. UTF-16 strings: a length in units (one u16, or two with the high bit
/// set past 0x7fff), the units, a 0 unit. UTF-8: the length in UTF-16 units then in bytes (one
/// byte each, or two with the high bit set past 0x7f), the bytes, a 0 byte.
fn string_pool(strings: &[String], utf8: bool) -> Vec<u8> {
    let mut offsets = Vec::new();
    let mut data = Vec::new();
    for s in strings {
        put32(&mut offsets, data.len() as u32);
        let units = s.encode_utf16().count();
        if utf8 {
            for len in [units, s.len()] {
                assert!(len <= 0x7fff, "UTF-8 pool strings are limited to 0x7fff");
                if len > 0x7f {
                    data.push(0x80 | (len >> 8) as u8);
                }
                data.push(len as u8);
            }
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        } else {
            if units > 0x7fff {
                put16(&mut data, 0x8000 | (units >> 16) as u16);
            }
            put16(&mut data, units as u16);
            for unit in s.encode_utf16() {
                put16(&mut data, unit);
            }
            put16(&mut data, 0);
        }
    }
    data.resize(data.len().next_multiple_of(4), 0);
    let mut header = Vec::new();
    put32(&mut header, strings.len() as u32);
    put32(&mut header, 0); // styles
    put32(&mut header, if utf8 { UTF8_FLAG } else { 0 });
    put32(&mut header, (28 + offsets.len()) as u32); // stringsStart
    put32(&mut header, 0); // stylesStart
    offsets.extend(data);
    chunk(0x0001, &header, &offsets)
}
