//! The one thing the SFU reads of STUN itself (str0m does the rest).

/// Whether a datagram is a STUN Binding request (RFC 8489) carrying USE-CANDIDATE (RFC 8445
/// §7.1.2): the peer nominating the pair it came on. Only read; str0m checks its integrity,
/// and the nomination counts once str0m has answered it with a success.
pub(crate) fn nominates(data: &[u8]) -> bool {
    const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USE_CANDIDATE: [u8; 2] = [0x00, 0x25];
    if data.len() < 20 || data[..2] != BINDING_REQUEST || data[4..8] != MAGIC_COOKIE {
        return false;
    }
    let mut rest = &data[20..];
    while rest.len() >= 4 {
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        if rest[..2] == USE_CANDIDATE {
            return true;
        }
        // Attribute values are padded to four bytes.
        let Some(next) = rest.get(4 + len.div_ceil(4) * 4..) else {
            return false;
        };
        rest = next;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN Binding request with the given attributes (type, value).
    fn stun(kind: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = kind.to_be_bytes().to_vec();
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn a_check_that_nominates_its_pair_is_recognised() {
        let user: (u16, &[u8]) = (0x0006, b"abcd:efg");
        let odd: (u16, &[u8]) = (0x8022, b"str0m");
        let priority: (u16, &[u8]) = (0x0024, &[0, 0, 1, 0]);
        let nominate: (u16, &[u8]) = (0x0025, &[]);
        let integrity: (u16, &[u8]) = (0x0008, &[9; 20]);
        assert!(nominates(&stun(
            0x0001,
            &[user, odd, priority, nominate, integrity]
        )));
        assert!(!nominates(&stun(0x0001, &[user, odd, priority, integrity])));
        assert!(!nominates(&stun(0x0101, &[nominate])), "a response");
        let whole = stun(0x0001, &[user, nominate]);
        assert!(!nominates(&whole[..16]), "too short for a header");
        let mut lying = stun(0x0001, &[(0x0006, &[1; 40]), nominate]);
        lying[22..24].copy_from_slice(&400u16.to_be_bytes());
        assert!(!nominates(&lying), "an attribute longer than the message");
        assert!(!nominates(&[0x90, 0x6f, 0, 1]), "RTP");
    }
}
