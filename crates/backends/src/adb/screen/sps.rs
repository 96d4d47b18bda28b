//! Just enough H.264 to follow a phone's video: the NAL units of an Annex B packet and the
//! picture size an SPS declares (ITU-T H.264 7.3.2.1.1), which is how a viewer learns that the
//! phone turned (scrcpy's encoder restarts with a new SPS; nothing else says so).

/// The NAL units of an Annex B byte stream, each without its start code (emulation-prevention
/// bytes left in).
pub fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let mut end = starts.get(n + 1).map_or(stream.len(), |&e| e - 3);
            // A four-byte start code's leading zero belongs to no unit.
            while end > s && stream[end - 1] == 0 && n + 1 < starts.len() {
                end -= 1;
            }
            &stream[s..end]
        })
        .collect()
}

/// The type of a NAL unit (7: SPS, 8: PPS, 5: IDR slice, 1: other slice).
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| b & 0x1F)
}

pub const NAL_SPS: u8 = 7;

/// The cropped picture size the first SPS of `stream` declares.
pub fn picture_size(stream: &[u8]) -> Option<(u16, u16)> {
    let sps = nal_units(stream)
        .into_iter()
        .find(|u| nal_type(u) == Some(NAL_SPS))?;
    sps_size(sps)
}

struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = byte >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn u(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |v, _| Some(v << 1 | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + u64::from(self.u(zeros)?)) as u32)
    }

    fn se(&mut self) -> Option<i32> {
        let v = i64::from(self.ue()?);
        Some(if v % 2 == 1 { (v + 1) / 2 } else { -(v / 2) } as i32)
    }

    /// `scaling_list()`: read and forgotten.
    fn skip_scaling_list(&mut self, size: usize) -> Option<()> {
        let (mut last, mut next) = (8i32, 8i32);
        for _ in 0..size {
            if next != 0 {
                next = (last + self.se()? + 256) % 256;
            }
            if next != 0 {
                last = next;
            }
        }
        Some(())
    }
}

/// The size an SPS NAL unit (header byte included, escapes in) declares, after cropping.
pub fn sps_size(unit: &[u8]) -> Option<(u16, u16)> {
    if nal_type(unit) != Some(NAL_SPS) {
        return None;
    }
    // The RBSP: `00 00 03` loses its 03.
    let mut data = Vec::with_capacity(unit.len());
    let mut zeros = 0;
    for &b in &unit[1..] {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        data.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    let mut r = Bits { data, pos: 0 };
    let profile = r.u(8)?;
    r.u(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format = r.ue()?;
        if chroma_format == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            for i in 0..if chroma_format == 3 { 12 } else { 8 } {
                if r.bit()? == 1 {
                    r.skip_scaling_list(if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()?.min(255) {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let mut width = width_mbs * 16;
    let mut height = height_units * 16 * (2 - u64::from(frame_mbs_only));
    if r.bit()? == 1 {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (unit_x, unit_y) = match chroma_format {
            0 => (1, 2 - u64::from(frame_mbs_only)),
            1 => (2, 2 * (2 - u64::from(frame_mbs_only))),
            2 => (2, 2 - u64::from(frame_mbs_only)),
            _ => (1, 2 - u64::from(frame_mbs_only)),
        };
        width = width.checked_sub(unit_x * (u64::from(left) + u64::from(right)))?;
        height = height.checked_sub(unit_y * (u64::from(top) + u64::from(bottom)))?;
    }
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the test phone (tests/fixtures/test-adbd) sends for 360x640: Constrained
    /// Baseline, 368 coded and 4 crop units off the right.
    const SPS_360X640: &[u8] = &[0x67, 0x42, 0xC0, 0x28, 0xDA, 0x05, 0xC1, 0x47, 0x97, 0x40];

    #[test]
    fn a_cropped_baseline_sps() {
        assert_eq!(sps_size(SPS_360X640), Some((360, 640)));
    }

    /// A High profile SPS as phones' encoders write them: 1920x1080 coded as 1088 rows and
    /// cropped, with scaling lists before the size, an escaped `00 00 03`, and a VUI after it.
    #[test]
    fn a_high_profile_sps() {
        let sps = [
            0x67, 0x64, 0x00, 0x28, 0xAD, 0x84, 0x3F, 0xFF, 0x82, 0x11, 0x6C, 0xA0, 0x3C, 0x01,
            0x13, 0xF2, 0xCD, 0x40, 0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x07, 0x98,
        ];
        assert_eq!(sps_size(&sps), Some((1920, 1080)));
        assert_eq!(sps_size(&sps[..8]), None, "cut short");
    }

    #[test]
    fn units_are_found_behind_both_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9,
        ];
        let units = nal_units(&stream);
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 9]]);
        assert_eq!(
            units.iter().map(|u| nal_type(u)).collect::<Vec<_>>(),
            [Some(7), Some(8), Some(5)]
        );
        assert_eq!(nal_units(&[1, 2, 3]), Vec::<&[u8]>::new());
        assert_eq!(picture_size(&stream), None, "a truncated SPS says nothing");
    }
}
