//! Forwarded packets leave through SRTP of our own. str0m negotiates each connection (ICE,
//! DTLS, the keys) and carries everything else a connection needs (STUN, RTCP, the speakers'
//! incoming audio), but a packet written to a listener's `Rtc` passes its send queue, pacer,
//! stream state and poll loop once per listener. Here each forwarded copy is one RTP header
//! written into a buffer, one AEAD seal and one `sendto`.
//!
//! The keys come from the DTLS handshake str0m runs: [`build`] makes the `Rtc` with a crypto
//! provider whose DTLS instances are str0m's own, wrapped to copy the SRTP keying material
//! they hand str0m into a slot the SFU holds. Only this path sends RTP on a listener's send
//! tracks; the SFU's `Out` gives each sealed packet an index above every earlier one's, so
//! no (SSRC, index) is sealed twice under one key.
//!
//! RFC 3711 (key derivation, AES-CM with HMAC-SHA1-80) and RFC 7714 (AEAD AES-GCM).

use std::cell::RefCell;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use str0m::crypto::dtls::{
    DtlsCert, DtlsImplError, DtlsInstance, DtlsOutput, DtlsProvider, DtlsVersion, ProtocolVersion,
    SrtpProfile,
};
use str0m::crypto::{
    AeadAes128GcmCipher, AeadAes256GcmCipher, Aes128CmSha1_80Cipher, CryptoError, CryptoProvider,
    Sha1HmacProvider, SrtpProvider,
};
use str0m::{Rtc, RtcConfig};
use zeroize::Zeroize;

/// The SRTP master keys of one connection, as DTLS exported them (RFC 5764 §4.2: client key,
/// server key, client salt, server salt), and which side we were. Wiped when dropped.
pub struct Keys {
    profile: SrtpProfile,
    material: Vec<u8>,
    client: bool,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("profile", &self.profile)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.material.zeroize();
    }
}

/// Where a connection's keys appear once its DTLS handshake is done; the SFU takes them out
/// to make its `SrtpTx`, so only the derived session keys stay in memory.
pub type KeySlot = Arc<Mutex<Option<Keys>>>;

/// Takes the keys out of a slot, once they are there.
pub fn take(slot: &KeySlot) -> Option<Keys> {
    slot.lock().ok()?.take()
}

thread_local! {
    /// The slot of the DTLS instance made last on this thread (by `build`).
    static MADE: RefCell<Option<KeySlot>> = const { RefCell::new(None) };
}

/// str0m's crypto provider with the DTLS factory wrapped (made once per process).
fn provider() -> &'static (CryptoProvider, Arc<CryptoProvider>) {
    static PROVIDER: OnceLock<(CryptoProvider, Arc<CryptoProvider>)> = OnceLock::new();
    static TAP: OnceLock<KeyTap> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let base = str0m::crypto::from_feature_flags();
        let tap = TAP.get_or_init(|| KeyTap {
            inner: base.dtls_provider,
        });
        let wrapped = CryptoProvider {
            dtls_provider: tap,
            ..base.clone()
        };
        (base, Arc::new(wrapped))
    })
}

/// The provider to make DTLS certificates and session ciphers with.
pub fn crypto() -> &'static CryptoProvider {
    &provider().0
}

/// Builds a connection from `config` whose SRTP keys will appear in the returned slot;
/// `None` if str0m did not make the connection's DTLS instance while building it (as 0.25
/// does), so its keys could never be seen.
pub fn build(config: &RtcConfig, now: Instant) -> Option<(Rtc, KeySlot)> {
    MADE.with(|m| m.borrow_mut().take());
    let rtc = config
        .clone()
        .set_crypto_provider(provider().1.clone())
        .build(now);
    let slot = MADE.with(|m| m.borrow_mut().take())?;
    Some((rtc, slot))
}

#[derive(Debug)]
struct KeyTap {
    inner: &'static dyn DtlsProvider,
}

impl DtlsProvider for KeyTap {
    fn generate_certificate(&self) -> Option<DtlsCert> {
        self.inner.generate_certificate()
    }

    fn new_dtls(
        &self,
        cert: &DtlsCert,
        now: Instant,
        version: DtlsVersion,
        mtu: Option<usize>,
    ) -> Result<Box<dyn DtlsInstance>, CryptoError> {
        let inner = self.inner.new_dtls(cert, now, version, mtu)?;
        let slot = KeySlot::default();
        MADE.with(|m| *m.borrow_mut() = Some(slot.clone()));
        Ok(Box::new(KeyTapped { inner, slot }))
    }

    fn is_test(&self) -> bool {
        self.inner.is_test()
    }
}

/// A DTLS instance that passes everything through and keeps a copy of the keying material.
#[derive(Debug)]
struct KeyTapped {
    inner: Box<dyn DtlsInstance>,
    slot: KeySlot,
}

impl DtlsInstance for KeyTapped {
    fn set_active(&mut self, active: bool) {
        self.inner.set_active(active);
    }

    fn handle_packet(&mut self, packet: &[u8]) -> Result<(), DtlsImplError> {
        self.inner.handle_packet(packet)
    }

    fn poll_output<'a>(&mut self, buf: &'a mut [u8]) -> DtlsOutput<'a> {
        let out = self.inner.poll_output(buf);
        if let DtlsOutput::KeyingMaterial(material, profile) = &out
            && let Ok(mut slot) = self.slot.lock()
        {
            *slot = Some(Keys {
                profile: *profile,
                material: material.to_vec(),
                client: self.inner.is_active(),
            });
        }
        out
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsImplError> {
        self.inner.handle_timeout(now)
    }

    fn send_application_data(&mut self, data: &[u8]) -> Result<usize, DtlsImplError> {
        self.inner.send_application_data(data)
    }

    fn is_active(&self) -> bool {
        self.inner.is_active()
    }

    fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.inner.protocol_version()
    }

    fn is_closing(&self) -> bool {
        self.inner.is_closing()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn close(&mut self) -> Result<(), DtlsImplError> {
        self.inner.close()
    }
}

/// The labels of RFC 3711 §4.3.1 for SRTP (not SRTCP) session keys.
const LABEL_KEY: u8 = 0;
const LABEL_AUTH: u8 = 1;
const LABEL_SALT: u8 = 2;
/// HMAC-SHA1-80: the tag is the first 80 bits.
const CM_TAG: usize = 10;
const GCM_TAG: usize = 16;

enum Seal {
    Cm {
        cipher: Box<dyn Aes128CmSha1_80Cipher>,
        auth: [u8; 20],
        hmac: &'static dyn Sha1HmacProvider,
    },
    Gcm(Gcm),
}

/// AEAD AES-GCM (RFC 7714): the same packet layout and IV for both key sizes.
enum Gcm {
    Aes128(Box<dyn AeadAes128GcmCipher>),
    Aes256(Box<dyn AeadAes256GcmCipher>),
}

/// The sending half of one connection's SRTP: session keys derived once, then one seal per
/// packet. The caller keeps each stream's rollover counter (its extended sequence number).
pub struct SrtpTx {
    seal: Seal,
    salt: [u8; 14],
}

impl fmt::Debug for SrtpTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SrtpTx")
    }
}

impl SrtpTx {
    /// Our sending keys from a connection's exported material.
    pub fn new(crypto: &CryptoProvider, keys: &Keys) -> Option<Self> {
        let (key_len, salt_len) = match keys.profile {
            SrtpProfile::AES128_CM_SHA1_80 => (16, 14),
            SrtpProfile::AEAD_AES_128_GCM => (16, 12),
            SrtpProfile::AEAD_AES_256_GCM => (32, 12),
            _ => return None,
        };
        let m = &keys.material;
        if m.len() != 2 * (key_len + salt_len) {
            return None;
        }
        // The client writes with the client's key and salt, the server with the server's.
        let (k, s) = if keys.client {
            (0, 2 * key_len)
        } else {
            (key_len, 2 * key_len + salt_len)
        };
        Some(Self::from_master(
            crypto,
            keys.profile,
            &m[k..k + key_len],
            &m[s..s + salt_len],
        ))
    }

    fn from_master(
        crypto: &CryptoProvider,
        profile: SrtpProfile,
        master: &[u8],
        master_salt: &[u8],
    ) -> Self {
        let srtp = crypto.srtp_provider;
        let session = |label, out: &mut [u8]| derive(srtp, master, master_salt, label, out);
        let mut salt = [0u8; 14];
        session(LABEL_SALT, &mut salt[..master_salt.len()]);
        let seal = match profile {
            SrtpProfile::AEAD_AES_256_GCM => {
                let mut key = [0u8; 32];
                session(LABEL_KEY, &mut key);
                Seal::Gcm(Gcm::Aes256(
                    srtp.aead_aes_256_gcm().create_cipher(key, true),
                ))
            }
            SrtpProfile::AEAD_AES_128_GCM => {
                let mut key = [0u8; 16];
                session(LABEL_KEY, &mut key);
                Seal::Gcm(Gcm::Aes128(
                    srtp.aead_aes_128_gcm().create_cipher(key, true),
                ))
            }
            _ => {
                let mut key = [0u8; 16];
                session(LABEL_KEY, &mut key);
                let mut auth = [0u8; 20];
                session(LABEL_AUTH, &mut auth);
                Seal::Cm {
                    cipher: srtp.aes_128_cm_sha1_80().create_cipher(key, true),
                    auth,
                    hmac: crypto.sha1_hmac_provider,
                }
            }
        };
        SrtpTx { seal, salt }
    }

    /// Writes the protected form of the RTP packet `plain` (its header is the first
    /// `header_len` bytes) to `out`. `index` is the packet's 48-bit SRTP index (rollover
    /// counter and sequence number).
    pub fn protect(
        &mut self,
        plain: &[u8],
        header_len: usize,
        ssrc: u32,
        index: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let (header, payload) = plain.split_at(header_len);
        let roc = (index >> 16) as u32;
        out.clear();
        out.extend_from_slice(header);
        match &mut self.seal {
            Seal::Cm { cipher, auth, hmac } => {
                // RFC 3711 §4.1.1: IV = salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16.
                let mut iv = [0u8; 16];
                iv[..14].copy_from_slice(&self.salt);
                xor(&mut iv[4..8], &ssrc.to_be_bytes());
                xor(&mut iv[8..14], &index.to_be_bytes()[2..]);
                // The provider's counter mode may write up to a block past the input's length
                // (str0m's trait asks for 15 spare bytes); only the input's length is kept.
                out.resize(header_len + payload.len() + 15, 0);
                cipher.encrypt(&iv, payload, &mut out[header_len..])?;
                out.truncate(header_len + payload.len());
                let tag = hmac.sha1_hmac(&auth[..], &[out.as_slice(), &roc.to_be_bytes()]);
                out.extend_from_slice(&tag[..CM_TAG]);
            }
            Seal::Gcm(gcm) => {
                let iv = gcm_iv(&self.salt, ssrc, roc, index as u16);
                out.resize(header_len + payload.len() + GCM_TAG, 0);
                let sealed = &mut out[header_len..];
                match gcm {
                    Gcm::Aes128(c) => c.encrypt(&iv, header, payload, sealed)?,
                    Gcm::Aes256(c) => c.encrypt(&iv, header, payload, sealed)?,
                }
            }
        }
        Ok(())
    }
}

/// RFC 7714 §8.1: IV = (0x0000 ‖ SSRC ‖ ROC ‖ SEQ) ⊕ salt.
fn gcm_iv(salt: &[u8], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    xor(&mut iv, &salt[..12]);
    iv
}

fn xor(into: &mut [u8], with: &[u8]) {
    for (a, b) in into.iter_mut().zip(with) {
        *a ^= b;
    }
}

/// RFC 3711 §4.3.1 key derivation with a key derivation rate of 0: AES in counter mode under
/// the master key, from (master salt ⊕ label·2^48)·2^16. RFC 7714 §11 uses it unchanged, the
/// 96-bit salt padded with zeros.
fn derive(srtp: &dyn SrtpProvider, master: &[u8], salt: &[u8], label: u8, out: &mut [u8]) {
    let mut input = [0u8; 16];
    input[..salt.len()].copy_from_slice(salt);
    input[7] ^= label;
    let mut block = [0u8; 32];
    for (round, chunk) in out.chunks_mut(16).enumerate() {
        input[14..].copy_from_slice(&(round as u16).to_be_bytes());
        if master.len() == 32 {
            srtp.srtp_aes_256_ecb_round(master, &input, &mut block);
        } else {
            srtp.srtp_aes_128_ecb_round(master, &input, &mut block);
        }
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// The RTP header extension ids the SFU negotiates (one-byte form, RFC 8285).
pub const EXT_AUDIO_LEVEL: u8 = 1;
pub const EXT_MID: u8 = 4;

/// One forwarded packet's header fields.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// RFC 6464 level in −dBov as str0m gives it (0 loudest, −127 silence) and the voice flag.
    pub level: Option<(i8, bool)>,
    pub mid: &'a [u8],
}

/// Writes an RTP packet (RFC 3550) with the audio level and MID extensions into `buf`;
/// returns the header's length.
pub fn write_rtp(h: &Header<'_>, payload: &[u8], buf: &mut Vec<u8>) -> usize {
    buf.clear();
    buf.push(0x90); // version 2, no padding, an extension, no CSRCs
    buf.push(((h.marker as u8) << 7) | (h.payload_type & 0x7f));
    buf.extend_from_slice(&h.sequence.to_be_bytes());
    buf.extend_from_slice(&h.timestamp.to_be_bytes());
    buf.extend_from_slice(&h.ssrc.to_be_bytes());
    buf.extend_from_slice(&[0xbe, 0xde, 0, 0]);
    let ext = buf.len();
    if let Some((level, voice)) = h.level {
        buf.push(EXT_AUDIO_LEVEL << 4);
        buf.push(((voice as u8) << 7) | (level.unsigned_abs().min(127)));
    }
    if let Some(last) = h.mid.len().min(16).checked_sub(1) {
        buf.push((EXT_MID << 4) | last as u8);
        buf.extend_from_slice(&h.mid[..=last]);
    }
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
    let words = ((buf.len() - ext) / 4) as u16;
    buf[ext - 2..ext].copy_from_slice(&words.to_be_bytes());
    let header_len = buf.len();
    buf.extend_from_slice(payload);
    header_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn session_keys_derive_as_rfc_3711_appendix_b3_lists_them() {
        let srtp = crypto().srtp_provider;
        let master = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0u8; 16];
        let mut auth = [0u8; 20];
        let mut session_salt = [0u8; 14];
        derive(srtp, &master, &salt, LABEL_KEY, &mut key);
        derive(srtp, &master, &salt, LABEL_AUTH, &mut auth);
        derive(srtp, &master, &salt, LABEL_SALT, &mut session_salt);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
    }

    /// RFC 7714 §16.1.1 gives session keys; the seal is checked against its packet.
    #[test]
    fn an_aes_128_gcm_packet_seals_as_rfc_7714_section_16_shows() {
        let srtp = crypto().srtp_provider;
        let mut key = [0u8; 16];
        key.copy_from_slice(&hex("000102030405060708090a0b0c0d0e0f"));
        let mut salt = [0u8; 14];
        salt[..12].copy_from_slice(&hex("517569642070726f2071756f"));
        let mut tx = SrtpTx {
            seal: Seal::Gcm(Gcm::Aes128(
                srtp.aead_aes_128_gcm().create_cipher(key, true),
            )),
            salt,
        };
        let plain = hex(
            "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
             20646976 69736120 696e2070 61727465 73207472 6573",
        );
        let mut out = Vec::new();
        tx.protect(&plain, 12, 0x5501_a0b2, 0xf17b, &mut out)
            .unwrap();
        assert_eq!(
            out,
            hex(
                "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca
                 be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1
                 6a9152cf 765ee439 0cce"
            )
        );
        assert_eq!(
            gcm_iv(&tx.salt, 0x5501_a0b2, 0, 0xf17b).to_vec(),
            hex("51753c6580c2726f20718414")
        );
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E…, salt F0F1…FD,
    /// SSRC 0, index 0; and the HMAC-SHA1-80 tag over header, ciphertext and ROC.
    #[test]
    fn an_aes_cm_packet_carries_the_rfc_3711_keystream_and_its_tag() {
        let crypto = crypto();
        let srtp = crypto.srtp_provider;
        let mut key = [0u8; 16];
        key.copy_from_slice(&hex("2B7E151628AED2A6ABF7158809CF4F3C"));
        let mut salt = [0u8; 14];
        salt.copy_from_slice(&hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"));
        let auth = [7u8; 20];
        let mut tx = SrtpTx {
            seal: Seal::Cm {
                cipher: srtp.aes_128_cm_sha1_80().create_cipher(key, true),
                auth,
                hmac: crypto.sha1_hmac_provider,
            },
            salt,
        };
        let mut plain = hex("80000000 00000000 00000000");
        plain.extend_from_slice(&[0u8; 48]);
        let mut out = Vec::new();
        tx.protect(&plain, 12, 0, 0, &mut out).unwrap();
        assert_eq!(
            out[12..60].to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            ),
        );
        let tag = crypto
            .sha1_hmac_provider
            .sha1_hmac(&auth, &[&out[..60], &[0, 0, 0, 0]]);
        assert_eq!(out[60..], tag[..CM_TAG]);
    }

    #[test]
    fn a_forwarded_header_carries_level_and_mid_in_one_byte_extensions() {
        let h = Header {
            payload_type: 111,
            marker: true,
            sequence: 0x1234,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
            level: Some((-30, true)),
            mid: b"2",
        };
        let mut buf = Vec::new();
        let n = write_rtp(&h, b"opus", &mut buf);
        assert_eq!(n, 20);
        assert_eq!(
            buf,
            hex("90ef1234 deadbeef 01020304 bede0001 109e4032 6f707573")
        );
        let quiet = Header {
            level: None,
            mid: b"",
            ..h
        };
        let n = write_rtp(&quiet, b"", &mut buf);
        assert_eq!(buf[..n], hex("90ef1234 deadbeef 01020304 bede0000")[..]);
    }
}
