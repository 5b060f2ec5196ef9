//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A data directory of its own for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
}

/// A running `roomtape serve`; killed if the test ends without stopping it.
pub struct Served(std::process::Child);

impl Served {
    /// SIGTERM, and the service must exit cleanly.
    pub fn stop(mut self) {
        tool("kill", &["-TERM", &self.0.id().to_string()]);
        let status = self.0.wait().unwrap();
        assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Env {
    /// A failed test shows the end of the service's log, if it ran one.
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.path("serve.log"))
        {
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!("--- serve.log (last lines) ---\n{}", tail.join("\n"));
        }
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Installs the embedding model in this data directory (a link), where `roomtape` looks by
    /// default: search by meaning is on from then on.
    pub fn install_embed_model(&self) {
        let models = self.data().join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::os::unix::fs::symlink(embed_model(), models.join("all-minilm-l6-v2")).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `roomtape --data-dir <data> args…`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roomtape"));
        c.arg("--data-dir").arg(self.data()).args(args);
        c.env_remove("ROOMTAPE_DATA_DIR")
            .env_remove("ROOMTAPE_CONFIG")
            // Tests run side by side: each service takes a free media port on loopback.
            .env("ROOMTAPE_MEDIA_LISTEN", "127.0.0.1:0")
            .env("ROOMTAPE_MEDIA_ADVERTISE", "127.0.0.1");
        c
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().expect("run roomtape");
        assert!(
            out.status.success(),
            "roomtape {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from {args:?}: {e}\n{out}"))
    }

    /// Runs and expects failure; returns the output.
    pub fn fails(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run roomtape");
        assert!(
            !out.status.success(),
            "roomtape {args:?} should have failed"
        );
        out
    }

    /// Starts `roomtape serve` on a free port; returns the running service and its address.
    pub fn serve(&self) -> (Served, String) {
        self.serve_with(&[])
    }

    /// `serve` with extra environment.
    pub fn serve_with(&self, vars: &[(&str, &str)]) -> (Served, String) {
        let mut child = self
            .cmd(&["serve", "--listen", "127.0.0.1:0"])
            .env("ROOMTAPE_LOG", "info,roomtape_web=debug")
            .envs(vars.iter().copied())
            .stdout(std::process::Stdio::piped())
            // The service's log, for reading after a failure.
            .stderr(std::fs::File::create(self.path("serve.log")).expect("serve.log"))
            .spawn()
            .expect("start roomtape serve");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let addr = line.trim().rsplit("http://").next().unwrap().to_string();
        (Served(child), addr)
    }

    /// The archive directory of a recording.
    pub fn archive(&self, id: &str) -> PathBuf {
        self.data().join("archives").join(id)
    }
}

/// Runs a helper program and insists that it works.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (make test installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Speaks `text` into a WAV file with espeak-ng.
pub fn speak(text: &str, voice: &str, path: &Path) {
    tool(
        "espeak-ng",
        &["-v", voice, "-w", path.to_str().unwrap(), text],
    );
}

/// Length of an audio file in seconds, as sox reads it.
pub fn soxi_seconds(path: &Path) -> f64 {
    tool("soxi", &["-D", path.to_str().unwrap()])
        .trim()
        .parse()
        .expect("soxi prints a number")
}

/// `opusinfo` must accept the file without a warning or error.
pub fn assert_opusinfo_ok(path: &Path) -> String {
    let out = Command::new("opusinfo")
        .arg(path)
        .output()
        .expect("run opusinfo");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "opusinfo rejects {}: {text}",
        path.display()
    );
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("warning") && !lower.contains("error"),
        "opusinfo complains about {}: {text}",
        path.display()
    );
    text
}

/// Decodes an Ogg/Opus file with libopus' reference tool and returns its length in seconds.
pub fn opusdec_seconds(path: &Path, scratch: &Path) -> f64 {
    let wav = scratch.join(format!(
        "{}.dec.wav",
        path.file_stem().unwrap().to_string_lossy()
    ));
    tool(
        "opusdec",
        &[
            "--quiet",
            "--rate",
            "48000",
            path.to_str().unwrap(),
            wav.to_str().unwrap(),
        ],
    );
    soxi_seconds(&wav)
}

/// Every `.opus` file of an archive.
pub fn opus_files(archive: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(archive.join("tracks"))
        .expect("tracks dir")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.push(archive.join("mix.opus"));
    files
}

/// The Whisper model the tests use: `ROOMTAPE_TEST_MODEL`, else the provisioned tiny.en.
pub fn test_model() -> String {
    let p = std::env::var("ROOMTAPE_TEST_MODEL")
        .unwrap_or_else(|_| format!("{}/data/models/tiny.en.bin", env!("CARGO_MANIFEST_DIR")));
    assert!(
        Path::new(&p).is_file(),
        "the tiny.en model is missing at {p}: `make test` provisions it (scripts/models.sh tiny.en)"
    );
    p
}

/// The multilingual model the language tests use: `ROOMTAPE_TEST_MULTILINGUAL_MODEL`, else the
/// provisioned base.
pub fn multilingual_model() -> String {
    let p = std::env::var("ROOMTAPE_TEST_MULTILINGUAL_MODEL")
        .unwrap_or_else(|_| format!("{}/data/models/base.bin", env!("CARGO_MANIFEST_DIR")));
    assert!(
        Path::new(&p).is_file(),
        "the base model is missing at {p}: `make test` provisions it (scripts/models.sh base)"
    );
    p
}

/// The sentence-embedding model of search by meaning: `ROOMTAPE_TEST_EMBED_MODEL`, else the
/// provisioned all-MiniLM-L6-v2.
pub fn embed_model() -> PathBuf {
    let p = std::env::var("ROOMTAPE_TEST_EMBED_MODEL").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/models/all-minilm-l6-v2"),
        PathBuf::from,
    );
    assert!(
        p.join("model.safetensors").is_file(),
        "the embedding model is missing at {}: `make test` provisions it \
         (scripts/models.sh all-minilm-l6-v2)",
        p.display()
    );
    p
}

/// Python with webvtt-py and srt (`make pytools`): `ROOMTAPE_TEST_PYTHON`, else the venv.
pub fn test_python() -> String {
    std::env::var("ROOMTAPE_TEST_PYTHON")
        .unwrap_or_else(|_| format!("{}/target/pyenv/bin/python", env!("CARGO_MANIFEST_DIR")))
}

/// Word error rate of `hyp` against `reference`, ignoring case and punctuation.
pub use roomtape_transcribe::metrics::wer;

/// One scripted sentence of a generated room.
pub struct Line {
    pub speaker: usize,
    pub at: f64,
    pub text: &'static str,
    pub seconds: f64,
}

/// Builds a room: one WAV per speaker (speech at its scripted times, digital silence elsewhere),
/// merged into one multi-channel file. Returns the file and the script with real durations.
pub fn make_room(
    env: &Env,
    voices: &[&str],
    script: &[(usize, f64, &'static str)],
    total: f64,
) -> (PathBuf, Vec<Line>) {
    let mut lines = Vec::new();
    let mut per_speaker: Vec<Vec<PathBuf>> = vec![Vec::new(); voices.len()];
    for (i, &(speaker, at, text)) in script.iter().enumerate() {
        let raw = env.path(&format!("line{i}.wav"));
        speak(text, voices[speaker], &raw);
        let seconds = soxi_seconds(&raw);
        let placed = env.path(&format!("line{i}-placed.wav"));
        // `-R`: sox dithers with a random seed otherwise, and the model hears the difference.
        tool(
            "sox",
            &[
                "-R",
                raw.to_str().unwrap(),
                "-r",
                "16000",
                placed.to_str().unwrap(),
                "pad",
                &format!("{at}"),
                "0",
            ],
        );
        per_speaker[speaker].push(placed);
        lines.push(Line {
            speaker,
            at,
            text,
            seconds,
        });
    }
    let mut tracks = Vec::new();
    for (s, parts) in per_speaker.iter().enumerate() {
        let track = env.path(&format!("speaker{s}.wav"));
        let silence = env.path(&format!("silence{s}.wav"));
        tool(
            "sox",
            &[
                "-R",
                "-n",
                "-r",
                "16000",
                "-c",
                "1",
                "-b",
                "16",
                silence.to_str().unwrap(),
                "trim",
                "0",
                &format!("{total}"),
            ],
        );
        if parts.is_empty() {
            std::fs::copy(&silence, &track).unwrap();
        } else {
            // Mix the lines onto the silence; `-v 1` per input keeps every voice at its level.
            let mut a = vec!["-R".to_string(), "-m".to_string()];
            for p in std::iter::once(&silence).chain(parts.iter()) {
                a.extend([
                    "-v".to_string(),
                    "1".to_string(),
                    p.to_str().unwrap().to_string(),
                ]);
            }
            a.extend([
                track.to_str().unwrap().to_string(),
                "trim".into(),
                "0".into(),
                format!("{total}"),
            ]);
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            tool("sox", &refs);
        }
        tracks.push(track);
    }
    let room = env.path("room.wav");
    let mut args = vec!["-R".to_string(), "-M".to_string()];
    args.extend(tracks.iter().map(|t| t.to_str().unwrap().to_string()));
    args.push(room.to_str().unwrap().into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("sox", &refs);
    (room, lines)
}

/// The three-speaker room of the transcription and search tests, imported with one track per
/// speaker and its transcription queued.
pub const VOICES: [&str; 3] = ["en-us+m3", "en-us+f4", "en"];
pub const NAMES: [&str; 3] = ["Ana Lima", "Bruno Costa", "Clara Diaz"];

pub fn room_script() -> Vec<(usize, f64, &'static str)> {
    vec![
        (
            0,
            1.0,
            "Good morning, and welcome to the weekly planning meeting.",
        ),
        (
            1,
            5.5,
            "Thank you. The new library will open in the spring.",
        ),
        (2, 11.0, "That is wonderful news for everyone in our town."),
        (0, 16.0, "Let us talk about the opening date next."),
        (
            1,
            20.5,
            "The builders promised to finish the roof before winter.",
        ),
    ]
}

pub fn import_room(env: &Env) -> (String, Vec<Line>) {
    let (room, lines) = make_room(env, &VOICES, &room_script(), 26.0);
    let out = env.json(&[
        "import",
        room.to_str().unwrap(),
        "--split-channels",
        "--title",
        "Planning meeting",
        "--speaker",
        NAMES[0],
        "--speaker",
        NAMES[1],
        "--speaker",
        NAMES[2],
        "--language",
        "en",
    ]);
    assert_eq!(out["tracks"].as_array().unwrap().len(), 3);
    assert!(
        out["job"].is_string(),
        "an import queues its transcription: {out}"
    );
    (out["id"].as_str().unwrap().to_string(), lines)
}

/// A GET over plain HTTP/1.1: `(status, body)`.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub use roomtape_web::account::urlencode as url_encode;

/// An HTTP answer read whole.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request (`Connection: close`, bodies of fixed length) with extra headers.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: resp[split + 4..].to_vec(),
    }
}

/// Creates an account with the CLI and returns an API token for it.
pub fn user_with_token(env: &Env, username: &str, display: &str) -> String {
    let out = env
        .cmd(&["-q", "users", "add", username, "--display-name", display])
        .env("ROOMTAPE_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["users", "token", username]).trim().to_string()
}
