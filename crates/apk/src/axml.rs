//! A strict, allocation-bounded reader of Android binary XML (AXML), just enough of it to take an
//! app's identity out of `AndroidManifest.xml`.
//!
//! Why not a crate: the maintained candidate, `apk-info-axml`, needs Rust 1.95 from 1.1 on (the
//! workspace promises 1.94, so the resolver picks 1.0.13). Both versions build a DOM of owned
//! strings, one copy per attribute: a 274 KB manifest whose 2000 attributes share one 100 000-unit
//! string made them hold 190 MB (a 4 MiB one reaches tens of GB). They also flatten typed values
//! to text (a literal label and a `@string` reference look alike), and 1.0.13 reads UTF-16 through
//! an unaligned `&[u16]`. `axmldecoder` (last release 2023, deku) and `abxml` (unmaintained,
//! `failure`, zip 0.5) are older still. We need five attributes, so this reader walks the chunks
//! once and copies out only those.
//!
//! The walk follows `ResXMLTree::setTo` and `ResXMLParser::nextNode` in Android's
//! `libs/androidfw/ResourceTypes.cpp`, so that what Android installs we read and what it rejects
//! we reject:
//! - the document's declared size must fit the data (a truncated file is an error);
//! - every chunk passes `validate_chunk`: header at least its minimum, size at least the header,
//!   both multiples of 4, inside the document; every node's header is at least 16 bytes;
//! - before the first XML node, chunks come in any order (string pool, resource map) and unknown
//!   ones are skipped, as are unknown node types after it;
//! - Android attributes are recognised by resource id (the resource map), which is what the
//!   package manager uses, and by namespace and name only when a name has no id;
//! - strings are checked (length inside the pool, terminator present) when read.
//!
//! Work is linear in the input: each chunk is visited once, names are compared without decoding,
//! and at most one string per returned field is decoded.

use crate::{ApkError, ApkInfo};

type Result<T> = std::result::Result<T, ApkError>;

// Chunk types (ResourceTypes.h).
const RES_STRING_POOL_TYPE: u16 = 0x0001;
const RES_XML_FIRST_CHUNK_TYPE: u16 = 0x0100;
const RES_XML_START_NAMESPACE_TYPE: u16 = 0x0100;
const RES_XML_END_NAMESPACE_TYPE: u16 = 0x0101;
const RES_XML_START_ELEMENT_TYPE: u16 = 0x0102;
const RES_XML_END_ELEMENT_TYPE: u16 = 0x0103;
const RES_XML_CDATA_TYPE: u16 = 0x0104;
const RES_XML_LAST_CHUNK_TYPE: u16 = 0x017f;
const RES_XML_RESOURCE_MAP_TYPE: u16 = 0x0180;

/// `ResChunk_header`: type, header size, total size.
const CHUNK_HEADER: usize = 8;
/// `ResXMLTree_node`: a chunk header, a line number and a comment.
const NODE_HEADER: usize = 16;
/// `ResStringPool_header`.
const STRING_POOL_HEADER: usize = 28;
/// `ResXMLTree_attrExt`: ns, name, attributeStart, attributeSize, attributeCount and three indices.
const ATTR_EXT: usize = 20;
/// `ResXMLTree_attribute`: ns, name, rawValue and an 8-byte `Res_value`.
const ATTRIBUTE: usize = 20;
/// `ResXMLTree_namespaceExt` and `ResXMLTree_endElementExt`: two string references.
const TWO_REFS_EXT: usize = 8;
/// `ResXMLTree_cdataExt`: a string reference and a `Res_value`.
const CDATA_EXT: usize = 12;

/// A string reference meaning "none" (`ResStringPool_ref` of -1).
pub(crate) const NO_STRING: u32 = u32::MAX;
/// `ResStringPool_header::UTF8_FLAG`.
pub(crate) const UTF8_FLAG: u32 = 1 << 8;

// `Res_value` data types.
pub(crate) const TYPE_REFERENCE: u8 = 0x01;
const TYPE_ATTRIBUTE: u8 = 0x02;
pub(crate) const TYPE_STRING: u8 = 0x03;
const TYPE_DYNAMIC_REFERENCE: u8 = 0x07;
const TYPE_DYNAMIC_ATTRIBUTE: u8 = 0x08;
const TYPE_FIRST_INT: u8 = 0x10;
const TYPE_LAST_INT: u8 = 0x1f;

pub const ANDROID_NS: &str = "http://schemas.android.com/apk/res/android";

// Framework attribute ids (`android.R.attr`).
pub const ATTR_LABEL: u32 = 0x0101_0001;
pub const ATTR_MIN_SDK_VERSION: u32 = 0x0101_020c;
pub const ATTR_VERSION_CODE: u32 = 0x0101_021b;
pub const ATTR_VERSION_NAME: u32 = 0x0101_021c;
pub const ATTR_VERSION_CODE_MAJOR: u32 = 0x0101_0576;

/// The longest package name accepted: it becomes a directory name on the device.
const MAX_PACKAGE_BYTES: usize = 255;

fn bad(message: impl Into<String>) -> ApkError {
    ApkError::BadManifest(message.into())
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// A validated chunk: `doc[start..start + size]`, its header being the first `header_size` bytes.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    kind: u16,
    start: usize,
    header_size: usize,
    size: usize,
}

impl Chunk {
    /// Android's `validate_chunk` for the chunk at `start` of `doc`.
    fn at(doc: &[u8], start: usize, min_header: usize) -> Result<Chunk> {
        let short = || bad(format!("chunk at byte {start} is cut short"));
        let kind = u16_at(doc, start).ok_or_else(short)?;
        let header_size = usize::from(u16_at(doc, start + 2).ok_or_else(short)?);
        let size = u32_at(doc, start + 4).ok_or_else(short)? as usize;
        if header_size < min_header {
            return Err(bad(format!(
                "chunk at byte {start}: header of {header_size} bytes, below {min_header}"
            )));
        }
        if size < header_size {
            return Err(bad(format!(
                "chunk at byte {start}: size {size} is smaller than its header ({header_size})"
            )));
        }
        if (header_size | size) & 3 != 0 {
            return Err(bad(format!(
                "chunk at byte {start}: size {size} or header {header_size} not a multiple of 4"
            )));
        }
        if size > doc.len() - start {
            return Err(bad(format!(
                "chunk at byte {start}: {size} bytes run past the end of the document"
            )));
        }
        Ok(Chunk {
            kind,
            start,
            header_size,
            size,
        })
    }

    /// What follows the header (for nodes, the "ext" structure and what it points at).
    fn body<'a>(&self, doc: &'a [u8]) -> &'a [u8] {
        &doc[self.start + self.header_size..self.start + self.size]
    }
}

/// The raw bytes of one pool string, without its length prefix and terminator.
enum RawStr<'a> {
    Utf8(&'a [u8]),
    Utf16(&'a [u8]),
}

/// A string pool, read lazily: nothing is decoded until asked for.
struct StringPool<'a> {
    offsets: &'a [u8],
    count: usize,
    strings: &'a [u8],
    utf8: bool,
}

impl<'a> StringPool<'a> {
    fn new(doc: &'a [u8], chunk: Chunk) -> Result<StringPool<'a>> {
        if chunk.header_size < STRING_POOL_HEADER {
            return Err(bad(format!(
                "string pool header of {} bytes, below {STRING_POOL_HEADER}",
                chunk.header_size
            )));
        }
        let pool = &doc[chunk.start..chunk.start + chunk.size];
        // In range: the header is at least 28 bytes and inside the chunk.
        let field = |at| u32_at(pool, at).unwrap_or(0) as usize;
        let (count, style_count, flags) = (field(8), field(12), field(16) as u32);
        let (strings_start, styles_start) = (field(20), field(24));
        let offsets = count
            .checked_mul(4)
            .and_then(|len| pool.get(chunk.header_size..chunk.header_size.checked_add(len)?))
            .ok_or_else(|| bad(format!("string pool: {count} offsets do not fit the pool")))?;
        let strings = if count == 0 {
            &[][..]
        } else {
            // With styles, the string data ends where the style data begins.
            let end = if style_count > 0 {
                styles_start
            } else {
                chunk.size
            };
            pool.get(strings_start..end).ok_or_else(|| {
                bad(format!(
                    "string pool: string data {strings_start}..{end} outside the pool"
                ))
            })?
        };
        Ok(StringPool {
            offsets,
            count,
            strings,
            utf8: flags & UTF8_FLAG != 0,
        })
    }

    /// The bytes of string `index`, checked like `ResStringPool::stringAt`: the length inside
    /// the data and a terminator after it. `None` for anything out of bounds.
    fn raw(&self, index: u32) -> Option<RawStr<'a>> {
        let index = index as usize;
        if index >= self.count {
            return None;
        }
        let offset = u32_at(self.offsets, index * 4)? as usize;
        let data = self.strings.get(offset..)?;
        if self.utf8 {
            // Two lengths: UTF-16 units (unused here), then UTF-8 bytes; each one byte, or two
            // when the high bit is set.
            let (_, units_len) = utf8_len(data)?;
            let (bytes, bytes_len) = utf8_len(data.get(units_len..)?)?;
            let start = units_len + bytes_len;
            let body = data.get(start..start.checked_add(bytes)?)?;
            (*data.get(start + bytes)? == 0).then_some(RawStr::Utf8(body))
        } else {
            // One length in UTF-16 units: one u16, or two when the high bit is set.
            let first = usize::from(u16_at(data, 0)?);
            let (units, start) = if first & 0x8000 != 0 {
                (((first & 0x7fff) << 16) | usize::from(u16_at(data, 2)?), 4)
            } else {
                (first, 2usize)
            };
            let end = start.checked_add(units.checked_mul(2)?)?;
            let body = data.get(start..end)?;
            (u16_at(data, end)? == 0).then_some(RawStr::Utf16(body))
        }
    }

    /// Decodes string `index`; invalid UTF-8 or UTF-16 becomes U+FFFD rather than an error.
    fn get(&self, index: u32) -> Option<String> {
        Some(match self.raw(index)? {
            RawStr::Utf8(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            RawStr::Utf16(bytes) => char::decode_utf16(
                bytes
                    .chunks_exact(2)
                    .map(|unit| u16::from_le_bytes([unit[0], unit[1]])),
            )
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
        })
    }

    /// Whether string `index` is `expected`, without decoding it (stops at the first difference,
    /// so a long hostile string costs no more than `expected`'s length).
    fn eq(&self, index: u32, expected: &str) -> bool {
        match self.raw(index) {
            Some(RawStr::Utf8(bytes)) => bytes == expected.as_bytes(),
            Some(RawStr::Utf16(bytes)) => bytes
                .chunks_exact(2)
                .map(|unit| u16::from_le_bytes([unit[0], unit[1]]))
                .eq(expected.encode_utf16()),
            None => false,
        }
    }
}

/// A UTF-8 pool length: the value and how many bytes encode it.
fn utf8_len(data: &[u8]) -> Option<(usize, usize)> {
    let first = usize::from(*data.first()?);
    if first & 0x80 != 0 {
        Some((((first & 0x7f) << 8) | usize::from(*data.get(1)?), 2))
    } else {
        Some((first, 1))
    }
}

/// One `ResXMLTree_attribute`.
#[derive(Clone, Copy)]
struct Attribute {
    ns: u32,
    name: u32,
    raw_value: u32,
    data_type: u8,
    data: u32,
}

/// The document's string pool and resource map, for naming attributes and reading values.
struct Names<'a> {
    pool: StringPool<'a>,
    /// `res_ids[i]` is the resource id of string `i`, for the strings the map covers.
    res_ids: &'a [u8],
}

impl Names<'_> {
    fn res_id(&self, name: u32) -> Option<u32> {
        u32_at(self.res_ids, (name as usize).checked_mul(4)?).filter(|&id| id != 0)
    }

    /// Whether `attribute` is the framework attribute `id` (`android:<name>`).
    fn is_android(&self, attribute: &Attribute, id: u32, name: &str) -> bool {
        match self.res_id(attribute.name) {
            Some(found) => found == id,
            None => self.pool.eq(attribute.ns, ANDROID_NS) && self.pool.eq(attribute.name, name),
        }
    }

    /// Whether `attribute` is the namespace-less attribute `name`: `package`, which Android looks
    /// up by name alone (`getAttributeValue(null, "package")`), whatever the resource map says.
    fn is_plain(&self, attribute: &Attribute, name: &str) -> bool {
        self.pool.raw(attribute.ns).is_none() && self.pool.eq(attribute.name, name)
    }

    /// A literal string value: a typed string, or the raw text kept beside a plain value.
    /// References and theme attributes are not literals.
    fn string(&self, attribute: &Attribute) -> Option<String> {
        match attribute.data_type {
            TYPE_STRING => self.pool.get(attribute.data),
            TYPE_REFERENCE | TYPE_ATTRIBUTE | TYPE_DYNAMIC_REFERENCE | TYPE_DYNAMIC_ATTRIBUTE => {
                None
            }
            _ if attribute.raw_value != NO_STRING => self.pool.get(attribute.raw_value),
            _ => None,
        }
    }
}

/// An integer value, as `XmlBlock.getAttributeIntValue` reads it: integer types only.
fn int(attribute: &Attribute) -> Option<u32> {
    (TYPE_FIRST_INT..=TYPE_LAST_INT)
        .contains(&attribute.data_type)
        .then_some(attribute.data)
}

/// A start element: its name and attribute table, validated like `ResXMLTree::validateNode`.
struct Element<'a> {
    name: u32,
    table: &'a [u8],
    stride: usize,
    count: usize,
}

impl<'a> Element<'a> {
    fn new(doc: &'a [u8], node: Chunk) -> Result<Element<'a>> {
        let ext = node.body(doc);
        let short = || bad(format!("element at byte {}: truncated", node.start));
        if ext.len() < ATTR_EXT {
            return Err(short());
        }
        let name = u32_at(ext, 4).ok_or_else(short)?;
        let start = usize::from(u16_at(ext, 8).ok_or_else(short)?);
        let stride = usize::from(u16_at(ext, 10).ok_or_else(short)?);
        let count = usize::from(u16_at(ext, 12).ok_or_else(short)?);
        if count > 0 && stride < ATTRIBUTE {
            return Err(bad(format!(
                "element at byte {}: attributes of {stride} bytes, below {ATTRIBUTE}",
                node.start
            )));
        }
        // At most 65535 * 65535 + 65535: no overflow on 64-bit, checked anyway for 32-bit.
        let table = stride
            .checked_mul(count)
            .and_then(|len| ext.get(start..start.checked_add(len)?))
            .ok_or_else(|| {
                bad(format!(
                    "element at byte {}: {count} attributes do not fit the element",
                    node.start
                ))
            })?;
        Ok(Element {
            name,
            table,
            stride,
            count,
        })
    }

    fn attributes(&self) -> impl Iterator<Item = Attribute> + '_ {
        // In bounds: the table holds `count` strides of at least ATTRIBUTE bytes.
        (0..self.count).map(move |i| {
            let at = i * self.stride;
            let word = |offset| u32_at(self.table, at + offset).unwrap_or(NO_STRING);
            Attribute {
                ns: word(0),
                name: word(4),
                raw_value: word(8),
                data_type: self.table.get(at + 15).copied().unwrap_or(0),
                data: word(16),
            }
        })
    }
}

/// What has been found so far; the first occurrence of each field wins.
#[derive(Default)]
struct Found {
    package: Option<String>,
    version_code: Option<u32>,
    version_code_major: Option<u32>,
    version_name: Option<String>,
    min_sdk: Option<u32>,
    label: Option<String>,
    seen_uses_sdk: bool,
    seen_application: bool,
}

/// Reads the manifest fields from an AXML document.
pub(crate) fn read(data: &[u8]) -> Result<ApkInfo> {
    // ResXMLTree::setTo: the header inside the declared size, the declared size inside the data
    // (so a truncated document is an error). The type is not checked: Android does not either.
    let (Some(header_size), Some(size)) = (u16_at(data, 2), u32_at(data, 4)) else {
        return Err(bad(format!(
            "{} bytes: too short for an Android binary XML document",
            data.len()
        )));
    };
    let (header_size, size) = (usize::from(header_size), size as usize);
    if header_size < CHUNK_HEADER || header_size > size {
        return Err(bad(format!(
            "document header of {header_size} bytes for a document of {size}"
        )));
    }
    if size > data.len() {
        return Err(bad(format!(
            "the document declares {size} bytes but has {}",
            data.len()
        )));
    }
    let doc = &data[..size];

    // The chunks before the first XML node: the string pool and resource map, in any order.
    let mut pool = None;
    let mut res_ids: &[u8] = &[];
    let mut at = header_size;
    let first_node = loop {
        if doc.len() - at < CHUNK_HEADER {
            break None;
        }
        let chunk = Chunk::at(doc, at, CHUNK_HEADER)?;
        match chunk.kind {
            RES_STRING_POOL_TYPE => pool = Some(StringPool::new(doc, chunk)?),
            RES_XML_RESOURCE_MAP_TYPE => {
                let ids = chunk.body(doc);
                res_ids = &ids[..ids.len() / 4 * 4];
            }
            RES_XML_FIRST_CHUNK_TYPE..=RES_XML_LAST_CHUNK_TYPE => break Some(at),
            _ => {}
        }
        // Progress: a valid chunk is at least CHUNK_HEADER bytes.
        at += chunk.size;
    };
    let Some(first_node) = first_node else {
        return Err(bad("no XML element in the document"));
    };
    let pool = pool.ok_or_else(|| bad("no string pool before the first XML element"))?;
    let names = Names { pool, res_ids };

    let mut found = Found::default();
    let mut depth = 0usize;
    let mut at = first_node;
    // ResXMLParser::nextNode: node after node until the end, or until the root element closes.
    while at < doc.len() {
        let node = Chunk::at(doc, at, NODE_HEADER)?;
        let ext_len = node.size - node.header_size;
        let minimum = match node.kind {
            RES_XML_START_ELEMENT_TYPE => ATTR_EXT,
            RES_XML_END_ELEMENT_TYPE
            | RES_XML_START_NAMESPACE_TYPE
            | RES_XML_END_NAMESPACE_TYPE => TWO_REFS_EXT,
            RES_XML_CDATA_TYPE => CDATA_EXT,
            _ => 0,
        };
        if ext_len < minimum {
            return Err(bad(format!(
                "node at byte {at}: {ext_len} bytes of content, below {minimum}"
            )));
        }
        match node.kind {
            RES_XML_START_ELEMENT_TYPE => {
                let element = Element::new(doc, node)?;
                match depth {
                    0 => {
                        if !names.pool.eq(element.name, "manifest") {
                            return Err(bad("the root element is not <manifest>"));
                        }
                        read_manifest_element(&names, &element, &mut found);
                    }
                    1 => read_child(&names, &element, &mut found),
                    _ => {}
                }
                depth += 1;
            }
            RES_XML_END_ELEMENT_TYPE => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| bad(format!("end element at byte {at} closes nothing")))?;
                if depth == 0 {
                    // </manifest>: nothing after it matters.
                    break;
                }
            }
            _ => {}
        }
        at += node.size;
    }

    let package = found
        .package
        .ok_or_else(|| bad("<manifest> has no package attribute"))?;
    check_package(&package)?;
    let version_code = match (found.version_code_major, found.version_code) {
        (None, None) => None,
        (major, minor) => Some(u64::from(major.unwrap_or(0)) << 32 | u64::from(minor.unwrap_or(0))),
    };
    Ok(ApkInfo {
        package,
        version_name: found.version_name.filter(|name| !name.is_empty()),
        version_code,
        label: found.label.filter(|label| !label.is_empty()),
        min_sdk: found.min_sdk,
    })
}

fn read_manifest_element(names: &Names<'_>, element: &Element<'_>, found: &mut Found) {
    for attribute in element.attributes() {
        if found.package.is_none() && names.is_plain(&attribute, "package") {
            found.package = names.string(&attribute);
        } else if found.version_code.is_none()
            && names.is_android(&attribute, ATTR_VERSION_CODE, "versionCode")
        {
            found.version_code = int(&attribute);
        } else if found.version_code_major.is_none()
            && names.is_android(&attribute, ATTR_VERSION_CODE_MAJOR, "versionCodeMajor")
        {
            found.version_code_major = int(&attribute);
        } else if found.version_name.is_none()
            && names.is_android(&attribute, ATTR_VERSION_NAME, "versionName")
        {
            found.version_name = names.string(&attribute);
        }
    }
}

/// The children of `<manifest>` that matter: the first `<uses-sdk>` and `<application>`.
fn read_child(names: &Names<'_>, element: &Element<'_>, found: &mut Found) {
    if !found.seen_uses_sdk && names.pool.eq(element.name, "uses-sdk") {
        found.seen_uses_sdk = true;
        found.min_sdk = element
            .attributes()
            .find(|a| names.is_android(a, ATTR_MIN_SDK_VERSION, "minSdkVersion"))
            .and_then(|a| int(&a))
            // The data is a signed int: a negative level is nonsense, not a huge one.
            .filter(|&sdk| i32::try_from(sdk).is_ok());
    } else if !found.seen_application && names.pool.eq(element.name, "application") {
        found.seen_application = true;
        found.label = element
            .attributes()
            .find(|a| names.is_android(a, ATTR_LABEL, "label"))
            .and_then(|a| names.string(&a));
    }
}

/// Android's `validateName(name, requireSeparator = true, requireFilename = true)`: ASCII
/// letters, digits and `_`, each `.`-separated segment starting with a letter, at least one `.`.
fn check_package(package: &str) -> Result<()> {
    let invalid = |why: &str| {
        let shown: String = package.chars().take(80).collect();
        Err(bad(format!("invalid package name {shown:?}: {why}")))
    };
    if package.len() > MAX_PACKAGE_BYTES {
        return invalid(&format!("longer than {MAX_PACKAGE_BYTES} bytes"));
    }
    let mut separator = false;
    let mut segment_start = true;
    for c in package.chars() {
        match c {
            'a'..='z' | 'A'..='Z' => segment_start = false,
            '0'..='9' | '_' if !segment_start => {}
            '.' => {
                separator = true;
                segment_start = true;
            }
            _ => return invalid(&format!("character {c:?} not allowed there")),
        }
    }
    if !separator {
        return invalid("no '.' separator");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_chunk(strings: &[u8], count: u32, utf8: bool, offsets: &[u32]) -> Vec<u8> {
        let mut strings = strings.to_vec();
        strings.resize(strings.len().next_multiple_of(4), 0);
        let strings = &strings[..];
        let header = STRING_POOL_HEADER + offsets.len() * 4;
        let mut out = Vec::new();
        out.extend_from_slice(&RES_STRING_POOL_TYPE.to_le_bytes());
        out.extend_from_slice(&(STRING_POOL_HEADER as u16).to_le_bytes());
        out.extend_from_slice(&((header + strings.len()) as u32).to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(if utf8 { UTF8_FLAG } else { 0 }).to_le_bytes());
        out.extend_from_slice(&(header as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for offset in offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(strings);
        out
    }

    fn with_pool<T>(chunk: &[u8], f: impl FnOnce(&StringPool<'_>) -> T) -> T {
        let parsed = Chunk::at(chunk, 0, CHUNK_HEADER).expect("chunk");
        f(&StringPool::new(chunk, parsed).expect("pool"))
    }

    #[test]
    fn utf8_lengths_of_one_and_two_bytes() {
        let long = "é".repeat(200); // 200 units, 400 bytes: both lengths take two bytes
        let mut strings = vec![2, 2, b'h', b'i', 0];
        let second = strings.len() as u32;
        strings.extend_from_slice(&[0x80, 200, 0x81, 0x90]);
        strings.extend_from_slice(long.as_bytes());
        strings.push(0);
        let chunk = pool_chunk(&strings, 2, true, &[0, second]);
        with_pool(&chunk, |pool| {
            assert_eq!(pool.get(0).as_deref(), Some("hi"));
            assert_eq!(pool.get(1).as_deref(), Some(long.as_str()));
            assert!(pool.eq(0, "hi") && !pool.eq(0, "h") && !pool.eq(0, "hit"));
            assert_eq!(pool.get(2), None);
        });
    }

    #[test]
    fn utf16_long_length_form_and_terminator() {
        // 0x8000 | 0 then 3: the two-unit length form for 3 units.
        let mut strings = vec![0x00, 0x80, 0x03, 0x00];
        for unit in "abc".encode_utf16() {
            strings.extend_from_slice(&unit.to_le_bytes());
        }
        strings.extend_from_slice(&[0, 0]);
        // A second string whose terminator is missing.
        let second = strings.len() as u32;
        strings.extend_from_slice(&[1, 0, b'x', 0, b'y', 0]);
        let chunk = pool_chunk(&strings, 2, false, &[0, second]);
        with_pool(&chunk, |pool| {
            assert_eq!(pool.get(0).as_deref(), Some("abc"));
            assert!(pool.eq(0, "abc"));
            assert_eq!(pool.get(1), None, "no terminator");
        });
    }

    #[test]
    fn huge_lengths_and_offsets_are_rejected_not_allocated() {
        let strings = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let chunk = pool_chunk(&strings, 3, false, &[0, u32::MAX, 4]);
        with_pool(&chunk, |pool| {
            assert_eq!(pool.get(0), None);
            assert_eq!(pool.get(1), None);
            assert_eq!(pool.get(2).as_deref(), Some(""));
        });
        let chunk = pool_chunk(&[0xff, 0xff, 0xff, 0xff], 1, true, &[0]);
        with_pool(&chunk, |pool| assert_eq!(pool.get(0), None));
    }

    #[test]
    fn string_pool_counts_beyond_the_chunk_are_errors() {
        let mut chunk = pool_chunk(&[], 0, false, &[]);
        chunk[8..12].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        let parsed = Chunk::at(&chunk, 0, CHUNK_HEADER).unwrap();
        assert!(StringPool::new(&chunk, parsed).is_err());
    }

    #[test]
    fn chunk_validation_follows_android() {
        let chunk = |kind: u16, header: u16, size: u32| {
            let mut out = kind.to_le_bytes().to_vec();
            out.extend_from_slice(&header.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.resize(32, 0);
            out
        };
        assert!(Chunk::at(&chunk(1, 8, 16), 0, 8).is_ok());
        assert!(
            Chunk::at(&chunk(1, 4, 16), 0, 8).is_err(),
            "header too small"
        );
        assert!(
            Chunk::at(&chunk(1, 16, 8), 0, 8).is_err(),
            "size below header"
        );
        assert!(Chunk::at(&chunk(1, 8, 18), 0, 8).is_err(), "unaligned");
        assert!(Chunk::at(&chunk(1, 8, 36), 0, 8).is_err(), "past the end");
        assert!(Chunk::at(&chunk(1, 8, 16), 28, 8).is_err(), "cut short");
    }

    #[test]
    fn package_names_follow_android_rules() {
        for ok in ["com.example", "a.b", "com.Example_1.x2", "a..b", "a.b."] {
            assert!(check_package(ok).is_ok(), "{ok}");
        }
        for not in [
            "",
            "example",
            "1com.example",
            "com.1example",
            "com._x",
            "com.ex-ample",
            "com/ex.ample",
            "com.exämple",
            "com.example\n",
        ] {
            assert!(check_package(not).is_err(), "{not:?}");
        }
        assert!(check_package(&format!("a.{}", "b".repeat(253))).is_ok());
        assert!(check_package(&format!("a.{}", "b".repeat(254))).is_err());
    }

    #[test]
    fn typed_values() {
        let attribute = |data_type, data, raw_value| Attribute {
            ns: NO_STRING,
            name: 0,
            raw_value,
            data_type,
            data,
        };
        assert_eq!(int(&attribute(0x10, 7, NO_STRING)), Some(7), "decimal");
        assert_eq!(
            int(&attribute(0x11, 0x10, NO_STRING)),
            Some(16),
            "hexadecimal"
        );
        assert_eq!(int(&attribute(0x12, 1, NO_STRING)), Some(1), "boolean");
        assert_eq!(int(&attribute(TYPE_STRING, 7, NO_STRING)), None);
        assert_eq!(int(&attribute(TYPE_REFERENCE, 7, NO_STRING)), None);
    }
}
