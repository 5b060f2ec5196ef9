//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A data directory of its own for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `roomtape --data-dir <data> args…`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_roomtape"));
        c.arg("--data-dir").arg(self.data()).args(args);
        c.env_remove("ROOMTAPE_DATA_DIR")
            .env_remove("ROOMTAPE_CONFIG");
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
