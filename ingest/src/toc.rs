//! Opus packet structure (RFC 6716 §3): how long a packet plays and whether it is well formed,
//! without decoding it.

/// Samples at 48 kHz in one frame for each TOC configuration (RFC 6716 §3.1, Table 2).
const FRAME_SAMPLES: [u16; 32] = [
    // SILK NB, MB, WB: 10, 20, 40, 60 ms
    480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
    // Hybrid SWB, FB: 10, 20 ms
    480, 960, 480, 960, // CELT NB, WB, SWB, FB: 2.5, 5, 10, 20 ms
    120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
];

/// Largest packet we accept from the network: one UDP datagram on an ordinary path.
pub const MAX_PACKET_BYTES: usize = 1500;

/// Why a packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// No bytes at all.
    Empty,
    /// More than [`MAX_PACKET_BYTES`].
    Oversized,
    /// The TOC or frame lengths contradict the packet's size (RFC 6716 §3.4).
    Malformed,
}

/// Samples at 48 kHz that `packet` plays, after checking its framing (RFC 6716 §3.2, R1–R7).
pub fn packet_samples(packet: &[u8]) -> Result<u32, PacketError> {
    let Some(&toc) = packet.first() else {
        return Err(PacketError::Empty);
    };
    if packet.len() > MAX_PACKET_BYTES {
        return Err(PacketError::Oversized);
    }
    let frame = u32::from(FRAME_SAMPLES[usize::from(toc >> 3)]);
    let rest = &packet[1..];
    let frames = match toc & 3 {
        0 => {
            if rest.len() > 1275 {
                return Err(PacketError::Malformed);
            }
            1
        }
        1 => {
            if !rest.len().is_multiple_of(2) || rest.len() / 2 > 1275 {
                return Err(PacketError::Malformed);
            }
            2
        }
        2 => {
            let (len1, used) = frame_length(rest).ok_or(PacketError::Malformed)?;
            if len1 + used > rest.len() || rest.len() - used - len1 > 1275 {
                return Err(PacketError::Malformed);
            }
            2
        }
        _ => code3_frames(rest)?,
    };
    let total = frame * frames;
    if total > 5760 {
        return Err(PacketError::Malformed);
    }
    Ok(total)
}

/// Reads a frame length (RFC 6716 §3.2.1): one byte below 252, else two.
fn frame_length(b: &[u8]) -> Option<(usize, usize)> {
    let first = usize::from(*b.first()?);
    if first < 252 {
        Some((first, 1))
    } else {
        let second = usize::from(*b.get(1)?);
        Some((first + 4 * second, 2))
    }
}

/// Checks a code 3 packet (RFC 6716 §3.2.5) and returns its frame count.
fn code3_frames(rest: &[u8]) -> Result<u32, PacketError> {
    let &fc = rest.first().ok_or(PacketError::Malformed)?;
    let count = usize::from(fc & 0x3f);
    let vbr = fc & 0x80 != 0;
    let padded = fc & 0x40 != 0;
    if count == 0 {
        return Err(PacketError::Malformed);
    }
    let mut pos = 1;
    let mut padding = 0usize;
    if padded {
        loop {
            let &p = rest.get(pos).ok_or(PacketError::Malformed)?;
            pos += 1;
            if p == 255 {
                padding += 254;
            } else {
                padding += usize::from(p);
                break;
            }
        }
    }
    let available = rest
        .len()
        .checked_sub(pos + padding)
        .ok_or(PacketError::Malformed)?;
    if vbr {
        let mut sum = 0usize;
        let mut header = 0usize;
        for _ in 0..count - 1 {
            let (len, used) = frame_length(&rest[pos + header..]).ok_or(PacketError::Malformed)?;
            if len > 1275 {
                return Err(PacketError::Malformed);
            }
            sum += len;
            header += used;
        }
        let last = available
            .checked_sub(header + sum)
            .ok_or(PacketError::Malformed)?;
        if last > 1275 {
            return Err(PacketError::Malformed);
        }
    } else if available % count != 0 || available / count > 1275 {
        return Err(PacketError::Malformed);
    }
    Ok(count as u32)
}

/// A 20, 10, 5 or 2.5 ms mono CELT frame of digital silence (TOC configs 31, 30, 29, 28,
/// then the CELT silence flag). Decoders output zeros for it; it fills gaps in live tracks.
pub fn silence_frame(samples: u32) -> Option<[u8; 3]> {
    let config: u8 = match samples {
        960 => 31,
        480 => 30,
        240 => 29,
        120 => 28,
        _ => return None,
    };
    Some([config << 3, 0xff, 0xfe])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_toc() {
        assert_eq!(packet_samples(&[31 << 3, 1, 2]), Ok(960));
        assert_eq!(packet_samples(&[(1 << 3) | 1, 1, 2]), Ok(1920));
        // Code 3, CBR, three 20 ms SILK frames of 2 bytes each.
        assert_eq!(
            packet_samples(&[(1 << 3) | 3, 3, 1, 2, 3, 4, 5, 6]),
            Ok(2880)
        );
        assert_eq!(packet_samples(&[28 << 3]), Ok(120));
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(packet_samples(&[]), Err(PacketError::Empty));
        assert_eq!(
            packet_samples(&[0x01, 1, 2, 3]),
            Err(PacketError::Malformed)
        );
        assert_eq!(packet_samples(&[0x03, 0]), Err(PacketError::Malformed));
        // 7 x 20 ms = 140 ms is longer than Opus allows.
        assert_eq!(
            packet_samples(&[(1 << 3) | 3, 7, 0, 0, 0, 0, 0, 0, 0]),
            Err(PacketError::Malformed)
        );
        assert_eq!(
            packet_samples(&vec![0xf8; 1501]),
            Err(PacketError::Oversized)
        );
        assert_eq!(packet_samples(&[0x02, 252]), Err(PacketError::Malformed));
    }
}
