//! Settings: built-in defaults, then a TOML file, then `ROOMTAPE_*` environment variables.
//!
//! Every key of the TOML file has an environment twin: the section and key joined by `_`,
//! upper-cased, behind `ROOMTAPE_`. `[server] listen = "…"` is `ROOMTAPE_SERVER_LISTEN`;
//! `data_dir` is `ROOMTAPE_DATA_DIR`. Command-line flags, applied by the binary, win over all.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// All settings. The TOML file may hold any subset; missing keys keep their defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the catalog, archives, models and index live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub media: MediaConfig,
    pub recorder: RecorderConfig,
    pub import: ImportConfig,
    pub transcribe: TranscribeConfig,
    pub captions: CaptionsConfig,
    pub search: SearchConfig,
    pub webhooks: WebhooksConfig,
}

/// `[search]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// `auto`: search by meaning is on when the sentence-embedding model is installed
    /// (`models/all-minilm-l6-v2`, provisioned by `make run`); `off`: words only.
    pub meaning: Meaning,
    /// Threads the embedding model may use (0: one per core).
    pub embed_threads: u32,
    /// The sentence-embedding model: a name under `models/` or a path to a
    /// sentence-transformers directory (`config.json`, `model.safetensors`, `tokenizer.json`)
    /// of a 384-dimension BERT model.
    pub embed_model: String,
}

/// Whether search by meaning is on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Meaning {
    #[default]
    Auto,
    Off,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            meaning: Meaning::Auto,
            embed_threads: 1,
            embed_model: "all-minilm-l6-v2".into(),
        }
    }
}

/// `[webhooks]`: how events reach the URLs users register.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Delay before the first retry; each further retry waits twice as long (plus up to a
    /// quarter more at random), at most an hour.
    pub retry_base_ms: u64,
    /// Attempts before a delivery is given up as failed.
    pub max_attempts: u32,
    /// How long one attempt may take, connecting included.
    pub timeout_ms: u64,
    /// Deliveries sent at the same time (at most one per webhook, so a slow receiver holds up
    /// only its own).
    pub concurrency: u32,
    /// Webhooks one user may have.
    pub max_per_user: u32,
    /// Whether webhooks may point at loopback, private, link-local and other non-public
    /// addresses (off: such URLs are refused, and so are host names that resolve to them).
    pub allow_private: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            retry_base_ms: 30_000,
            max_attempts: 10,
            timeout_ms: 10_000,
            concurrency: 8,
            max_per_user: 10,
            allow_private: false,
        }
    }
}

/// `[transcribe]`: Whisper and the worker.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TranscribeConfig {
    /// An installed model's name (`roomtape model list`) or a path to a ggml file.
    pub model: String,
    /// Threads per Whisper call; 0 means one per core.
    pub threads: u32,
    /// How long a worker's lease on a job lasts without renewal.
    pub lease_seconds: u32,
    /// `auto`: lines said in another language than English also get an English translation
    /// (Whisper's translate task; a multilingual model; English is the only target Whisper
    /// has). `off`: transcripts only.
    pub translate: Translate,
}

/// `[captions]`: live captions in rooms.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CaptionsConfig {
    /// Whether the server makes live captions at all (each room's host may still turn them
    /// off). A missing model turns them off with a warning.
    pub enabled: bool,
    /// An installed model's name or a path to a ggml file (tiny.en suits a small machine).
    pub model: String,
    /// Whisper threads for captions: one captioning thread serves every room, and each
    /// decode uses this many.
    pub threads: u32,
    /// New speech between two decodes of a speaker, ms (longer under load, up to 3 s).
    pub step_ms: u32,
}

impl Default for CaptionsConfig {
    fn default() -> Self {
        CaptionsConfig {
            enabled: true,
            model: "tiny.en".into(),
            threads: 1,
            step_ms: 1000,
        }
    }
}

/// Whether transcripts get English translations.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Translate {
    #[default]
    Auto,
    Off,
}

impl Default for TranscribeConfig {
    fn default() -> Self {
        TranscribeConfig {
            model: "base".into(),
            threads: 0,
            lease_seconds: 60,
            translate: Translate::Auto,
        }
    }
}

/// `[server]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP listener.
    pub listen: String,
    /// The address people use, e.g. `https://rooms.example.org` (empty: unknown). An `https`
    /// URL makes session cookies `Secure`; its origin is the one browsers' requests must carry.
    pub public_url: String,
    /// Whether anyone may create an account (the first account, the admin, always may).
    pub open_signup: bool,
    /// Whether people without an account may listen to public and unlisted rooms (listen
    /// only: raising a hand asks them to sign in).
    pub guest_listeners: bool,
    /// Days a log-in lasts.
    pub session_days: u32,
    /// Seconds a client has to send a whole request head once its first byte has come; a
    /// client still trickling header lines then is cut off (0: no limit).
    pub header_timeout_secs: u32,
    /// Seconds a request body may take to arrive, counted from its head; a late one is
    /// answered 408 and its connection closed (0: no limit).
    pub body_timeout_secs: u32,
    /// Seconds a connection may sit with nothing moving while the server waits on the client:
    /// for the first byte of the (next) request, or for it to read more of an answer. The
    /// connection is closed then (0: no limit).
    pub idle_timeout_secs: u32,
    /// Connections one client address (for IPv6, one /64) may hold open at once, WebSockets
    /// included; further ones are closed at once (0: no limit). Behind a reverse proxy every
    /// connection comes from the proxy: raise it or set 0 and let the proxy limit clients.
    pub max_connections_per_ip: u32,
    /// Reverse proxies (addresses or CIDR blocks) whose `X-Forwarded-For` / `Forwarded` headers
    /// name the client. Empty: the peer of the TCP connection is the client, and those headers
    /// are ignored (anyone can write them).
    pub trusted_proxies: Vec<IpCidr>,
}

/// An IP address or a block of them, written `192.0.2.7`, `10.0.0.0/8` or `fd00::/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpCidr {
    net: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Whether `ip` is in the block. An IPv4 address seen as IPv6 (`::ffff:a.b.c.d`, from a
    /// dual-stack listener) is compared as the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpCidr {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or a CIDR block like 10.0.0.0/8");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let net = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(IpCidr { net, prefix })
    }
}

impl std::fmt::Display for IpCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Serialize for IpCidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpCidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[media]`: the SFU's UDP socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Address of the one UDP socket every WebRTC peer talks to.
    pub listen: String,
    /// The IP address browsers are told to send media to (behind NAT: the public one). Empty:
    /// the listen address, or when that is unspecified (0.0.0.0), this machine's address on its
    /// default route.
    pub advertise: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            listen: "0.0.0.0:50000".into(),
            advertise: String::new(),
        }
    }
}

/// `[recorder]`: how live RTP becomes Ogg/Opus.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecorderConfig {
    /// How long a packet may wait for earlier ones before gaps are filled.
    pub jitter_ms: u32,
    /// Longest time between two Ogg pages; bounds what a crash can lose.
    pub flush_ms: u32,
}

/// `[import]`: how files become tracks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// Opus bit rate of imported speech tracks, bits per second.
    pub bitrate: i32,
    /// Opus bit rate of the replay mix, bits per second.
    pub mix_bitrate: i32,
    /// Longest file accepted, in seconds of audio.
    pub max_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            media: MediaConfig::default(),
            recorder: RecorderConfig::default(),
            import: ImportConfig::default(),
            transcribe: TranscribeConfig::default(),
            captions: CaptionsConfig::default(),
            search: SearchConfig::default(),
            webhooks: WebhooksConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            open_signup: true,
            guest_listeners: true,
            session_days: 30,
            trusted_proxies: Vec::new(),
            header_timeout_secs: 20,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections_per_ip: 256,
        }
    }
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            jitter_ms: 200,
            flush_ms: 1000,
        }
    }
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            bitrate: 32_000,
            mix_bitrate: 48_000,
            max_seconds: 12 * 3600,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(file, &vars)
    }

    /// Like [`Config::load`] with an explicit environment, for tests.
    pub fn load_with_env(file: Option<&Path>, env: &[(String, String)]) -> Result<Config> {
        let mut table = toml::Table::try_from(Config::default())
            .map_err(|e| Error::Config(format!("defaults: {e}")))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
            let from_file: toml::Table = toml::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            merge(&mut table, from_file);
        }
        for (key, value) in env {
            let Some(name) = key.strip_prefix("ROOMTAPE_") else {
                continue;
            };
            apply_env(&mut table, &name.to_ascii_lowercase(), value)
                .map_err(|e| Error::Config(format!("{key}: {e}")))?;
        }
        let what = file.map_or_else(|| "settings".to_string(), |p| p.display().to_string());
        table
            .try_into()
            .map_err(|e| Error::Config(format!("{what}: {e}")))
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Sets `name` (`section_key` or `key`) in `table` if such a key exists; unknown names are
/// ignored so that unrelated `ROOMTAPE_*` variables (e.g. `ROOMTAPE_LOG`) do no harm.
fn apply_env(table: &mut toml::Table, name: &str, raw: &str) -> Result<(), String> {
    if let Some(current) = table.get(name) {
        if !current.is_table() {
            let v = typed_like(current, raw)?;
            table.insert(name.to_string(), v);
        }
        return Ok(());
    }
    for (section, inner) in table.iter_mut() {
        let Some(rest) = name
            .strip_prefix(section.as_str())
            .and_then(|r| r.strip_prefix('_'))
        else {
            continue;
        };
        if let toml::Value::Table(t) = inner {
            return apply_env(t, rest, raw);
        }
    }
    Ok(())
}

fn typed_like(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    Ok(match current {
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected an integer, got {raw:?}"))?,
        ),
        toml::Value::Float(_) => toml::Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected a number, got {raw:?}"))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(format!("expected true or false, got {raw:?}")),
        }),
        // Lists are written comma-separated: `10.0.0.1,10.0.0.2`.
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| toml::Value::String(v.to_string()))
                .collect(),
        ),
        _ => toml::Value::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roomtape.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\n[recorder]\njitter_ms = 50\n",
        )
        .unwrap();
        let env = vec![
            ("ROOMTAPE_RECORDER_JITTER_MS".to_string(), "80".to_string()),
            ("ROOMTAPE_DATA_DIR".to_string(), "/srv/rt".to_string()),
            ("ROOMTAPE_LOG".to_string(), "debug".to_string()),
        ];
        let c = Config::load_with_env(Some(&path), &env).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.recorder.jitter_ms, 80);
        assert_eq!(c.recorder.flush_ms, 1000);
        assert_eq!(c.data_dir, PathBuf::from("/srv/rt"));
        let env = vec![
            (
                "ROOMTAPE_WEBHOOKS_RETRY_BASE_MS".to_string(),
                "200".to_string(),
            ),
            (
                "ROOMTAPE_WEBHOOKS_ALLOW_PRIVATE".to_string(),
                "true".to_string(),
            ),
        ];
        let c = Config::load_with_env(None, &env).unwrap();
        assert_eq!(c.webhooks.retry_base_ms, 200);
        assert!(c.webhooks.allow_private);
        assert_eq!(c.webhooks.max_attempts, 10);
    }

    #[test]
    fn trusted_proxies_are_addresses_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]\n",
        )
        .unwrap();
        let c = Config::load_with_env(Some(&path), &[]).unwrap();
        let t = &c.server.trusted_proxies;
        assert_eq!(t.len(), 2);
        assert!(t[0].contains("10.200.3.4".parse().unwrap()));
        assert!(t[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!t[0].contains("11.0.0.1".parse().unwrap()));
        assert!(t[1].contains("2001:db8::1".parse().unwrap()));
        assert!(!t[1].contains("2001:db8::2".parse().unwrap()));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(!all.contains("::1".parse().unwrap()));

        let env = vec![(
            "ROOMTAPE_SERVER_TRUSTED_PROXIES".to_string(),
            "127.0.0.1, fd00::/8".to_string(),
        )];
        let c = Config::load_with_env(None, &env).unwrap();
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert!(Config::default().server.trusted_proxies.is_empty());
        for bad in ["10.0.0.0/33", "example.org", "10.0.0.1/x", ""] {
            let env = vec![(
                "ROOMTAPE_SERVER_TRUSTED_PROXIES".to_string(),
                format!("{bad},"),
            )];
            if bad.is_empty() {
                assert!(Config::load_with_env(None, &env).is_ok());
                continue;
            }
            let err = Config::load_with_env(None, &env).unwrap_err().to_string();
            assert!(err.contains("CIDR"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let env = vec![("ROOMTAPE_RECORDER_FLUSH_MS".to_string(), "soon".to_string())];
        let err = Config::load_with_env(None, &env).unwrap_err().to_string();
        assert!(err.contains("ROOMTAPE_RECORDER_FLUSH_MS"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nlisten_on = \"x\"\n").unwrap();
        let err = Config::load_with_env(Some(&path), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_on"), "{err}");
    }
}
