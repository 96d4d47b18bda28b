//! scrcpy's video socket after its headers: packets, each behind 12 bytes (`u64` PTS and
//! flags: bit 63 config, bit 62 key frame; `u32` length; big-endian). A config packet (SPS and
//! PPS) is not a picture: it is kept and put in front of every key frame that follows it, so
//! that each key frame can start a decoder by itself (WebCodecs in Annex B mode wants them
//! there, and a viewer who joins late starts at a later key frame).

use bytes::{Bytes, BytesMut};

use super::sps;

pub const HEADER_LEN: usize = 12;
const FLAG_CONFIG: u64 = 1 << 63;
const FLAG_KEY: u64 = 1 << 62;
/// A packet larger than this is a broken stream, not a picture.
pub const MAX_PACKET: u32 = 32 << 20;

/// What a packet header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub config: bool,
    pub key: bool,
    /// Microseconds.
    pub pts: u64,
    pub len: u32,
}

pub fn header(b: &[u8; HEADER_LEN]) -> Header {
    let pts_flags = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
    Header {
        config: pts_flags & FLAG_CONFIG != 0,
        key: pts_flags & FLAG_KEY != 0,
        pts: pts_flags & !(FLAG_CONFIG | FLAG_KEY),
        len: u32::from_be_bytes(b[8..].try_into().expect("4 bytes")),
    }
}

/// A picture ready for a viewer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    /// It starts a decoder: the config is in front of it.
    pub key: bool,
    /// The picture's size, from the last config.
    pub size: (u16, u16),
    pub data: Bytes,
}

/// Turns packets into [`Picture`]s.
pub struct Demuxer {
    config: Option<Bytes>,
    size: (u16, u16),
}

impl Demuxer {
    /// `size`: the video's size from the codec meta, until a config says otherwise.
    pub fn new(size: (u16, u16)) -> Demuxer {
        Demuxer { config: None, size }
    }

    pub fn size(&self) -> (u16, u16) {
        self.size
    }

    /// One packet; `None` for a config packet, which is kept for the next key frames.
    pub fn push(&mut self, header: Header, data: Bytes) -> Option<Picture> {
        if header.config {
            if let Some(size) = sps::picture_size(&data) {
                self.size = size;
            }
            self.config = Some(data);
            return None;
        }
        let has_sps = sps::nal_units(&data)
            .iter()
            .any(|u| sps::nal_type(u) == Some(sps::NAL_SPS));
        let data = match (&self.config, header.key && !has_sps) {
            (Some(config), true) => {
                let mut merged = BytesMut::with_capacity(config.len() + data.len());
                merged.extend_from_slice(config);
                merged.extend_from_slice(&data);
                merged.freeze()
            }
            _ => data,
        };
        if has_sps && let Some(size) = sps::picture_size(&data) {
            self.size = size;
        }
        Some(Picture {
            // A key frame with no config known cannot start a decoder.
            key: header.key && (self.config.is_some() || has_sps),
            size: self.size,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS_360X640: &[u8] = &[
        0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x28, 0xDA, 0x05, 0xC1, 0x47, 0x97, 0x40,
    ];

    fn head(pts_flags: u64, len: u32) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&pts_flags.to_be_bytes());
        h[8..].copy_from_slice(&len.to_be_bytes());
        h
    }

    #[test]
    fn headers_carry_flags_and_time() {
        assert_eq!(
            header(&head(1 << 63, 9)),
            Header {
                config: true,
                key: false,
                pts: 0,
                len: 9
            }
        );
        assert_eq!(
            header(&head(1 << 62 | 33_333, 70_000)),
            Header {
                config: false,
                key: true,
                pts: 33_333,
                len: 70_000
            }
        );
    }

    #[test]
    fn the_config_goes_in_front_of_every_key_frame() {
        let mut d = Demuxer::new((184, 320));
        let config = Bytes::from([SPS_360X640, &[0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80]].concat());
        let key = Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        let delta = Bytes::from_static(&[0, 0, 0, 1, 0x41, 0x9A]);
        let h = |flags: u64, data: &Bytes| header(&head(flags, data.len() as u32));

        // A key frame before any config cannot start a decoder.
        let early = d.push(h(1 << 62, &key), key.clone()).unwrap();
        assert!(!early.key);
        assert_eq!(early.size, (184, 320));

        assert_eq!(d.push(h(1 << 63, &config), config.clone()), None);
        let first = d.push(h(1 << 62 | 1, &key), key.clone()).unwrap();
        assert!(first.key);
        assert_eq!(first.data, [&config[..], &key[..]].concat());
        assert_eq!(first.size, (360, 640), "the size comes from the SPS");
        let next = d.push(h(2, &delta), delta.clone()).unwrap();
        assert_eq!((next.key, next.data), (false, delta.clone()));
        // A later key frame gets the config again.
        let later = d.push(h(1 << 62 | 3, &key), key.clone()).unwrap();
        assert!(later.key && later.data.starts_with(&config));
        // A key frame that carries its own config is left alone.
        let own = Bytes::from([&config[..], &key[..]].concat());
        let whole = d.push(h(1 << 62 | 4, &own), own.clone()).unwrap();
        assert_eq!(whole.data, own);
    }
}
