//! Imports of real speech, the archive layout, exports, and the golden archive.

use crate::support::*;

#[test]
fn imported_speech_passes_opusinfo_and_keeps_its_length() {
    let env = Env::new();
    let voice = env.path("voice.wav");
    speak(
        "Good morning. This recording checks that imported speech keeps its exact length.",
        "en",
        &voice,
    );
    // Resampled to 44.1 kHz stereo, so the import has to downmix and resample.
    let input = env.path("input.wav");
    tool(
        "sox",
        &[
            voice.to_str().unwrap(),
            "-r",
            "44100",
            "-c",
            "2",
            input.to_str().unwrap(),
        ],
    );
    let source = soxi_seconds(&input);

    let out = env.json(&[
        "import",
        input.to_str().unwrap(),
        "--title",
        "Morning",
        "--speaker",
        "Ana",
    ]);
    let id = out["id"].as_str().unwrap().to_string();
    assert_eq!(out["tracks"].as_array().unwrap().len(), 1);
    assert_eq!(out["tracks"][0]["speaker_name"], "Ana");

    let archive = env.archive(&id);
    for f in opus_files(&archive) {
        let info = assert_opusinfo_ok(&f);
        assert!(info.contains("Channels: 1"), "{info}");
        let decoded = opusdec_seconds(&f, env.dir.path());
        assert!(
            (decoded - source).abs() <= 0.040,
            "{} decodes to {decoded:.3} s, source is {source:.3} s",
            f.display()
        );
    }
    let info = assert_opusinfo_ok(&opus_files(&archive)[0]);
    assert!(
        info.contains("TITLE=Ana"),
        "speaker name in OpusTags: {info}"
    );

    // The manifest, the catalog and the peaks agree.
    let shown = env.json(&["recordings", "show", &id]);
    assert_eq!(shown["recording_id"], id.as_str());
    assert_eq!(shown["title"], "Morning");
    assert_eq!(shown["open"], false);
    let peaks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(archive.join("peaks.json")).unwrap()).unwrap();
    assert_eq!(peaks["rate"], 10);
    let n = peaks["tracks"][0]["peaks"].as_array().unwrap().len() as f64;
    assert!((n / 10.0 - source).abs() <= 0.1, "{n} peaks for {source} s");
    assert!(
        peaks["mix"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_u64().unwrap() > 50),
        "speech is visible in the peaks"
    );

    let listed = env.json(&["recordings", "list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["state"], "recorded");
    assert_eq!(listed[0]["tracks"][0]["speaker"]["name"], "Ana");

    // Decoded audio for a DAW.
    let wav = env.path("export.wav");
    env.ok(&["recordings", "audio", &id[..8], "-o", wav.to_str().unwrap()]);
    assert!((soxi_seconds(&wav) - source).abs() <= 0.040);
    let wav1 = env.path("export-track.wav");
    env.ok(&[
        "recordings",
        "audio",
        &id,
        "--track",
        "Ana",
        "-o",
        wav1.to_str().unwrap(),
    ]);
    assert!((soxi_seconds(&wav1) - source).abs() <= 0.040);
}

#[test]
fn split_channels_gives_each_microphone_its_own_track() {
    let env = Env::new();
    let (a, b) = (env.path("a.wav"), env.path("b.wav"));
    speak("The left microphone speaks first.", "en", &a);
    speak("Then the right microphone answers.", "en+f3", &b);
    let la = soxi_seconds(&a);
    // Left: speech then silence; right: silence then speech.
    let left = env.path("left.wav");
    let right = env.path("right.wav");
    let lb = soxi_seconds(&b);
    tool(
        "sox",
        &[
            a.to_str().unwrap(),
            left.to_str().unwrap(),
            "pad",
            "0",
            &format!("{lb}"),
        ],
    );
    tool(
        "sox",
        &[
            b.to_str().unwrap(),
            right.to_str().unwrap(),
            "pad",
            &format!("{la}"),
            "0",
        ],
    );
    let stereo = env.path("stereo.flac");
    tool(
        "sox",
        &[
            "-M",
            left.to_str().unwrap(),
            right.to_str().unwrap(),
            stereo.to_str().unwrap(),
        ],
    );

    let out = env.json(&[
        "import",
        stereo.to_str().unwrap(),
        "--split-channels",
        "--speaker",
        "Left Mic",
        "--speaker",
        "Right Mic",
    ]);
    let id = out["id"].as_str().unwrap();
    let tracks = out["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0]["speaker_name"], "Left Mic");
    assert_eq!(tracks[1]["speaker_name"], "Right Mic");
    for f in opus_files(&env.archive(id)) {
        assert_opusinfo_ok(&f);
    }
    // Each track holds its own microphone: loud where it spoke, silent where the other did.
    let peaks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.archive(id).join("peaks.json")).unwrap())
            .unwrap();
    let loud = |t: usize, from: f64, to: f64| -> u64 {
        let p = peaks["tracks"][t]["peaks"].as_array().unwrap();
        p[(from * 10.0) as usize..((to * 10.0) as usize).min(p.len())]
            .iter()
            .map(|v| v.as_u64().unwrap())
            .max()
            .unwrap_or(0)
    };
    assert!(loud(0, 0.2, la - 0.2) > 60, "left speaks first");
    assert!(
        loud(0, la + 0.3, la + lb - 0.2) < 10,
        "left is silent later"
    );
    assert!(loud(1, 0.2, la - 0.3) < 10, "right is silent first");
    assert!(loud(1, la + 0.2, la + lb - 0.2) > 60, "right speaks later");
}

#[test]
fn mp3_and_ogg_opus_inputs_import() {
    let env = Env::new();
    let voice = env.path("v.wav");
    speak("Compressed formats import as well.", "en", &voice);
    let source = soxi_seconds(&voice);
    let mp3 = env.path("v.mp3");
    tool("sox", &[voice.to_str().unwrap(), mp3.to_str().unwrap()]);
    let out = env.json(&["import", mp3.to_str().unwrap()]);
    assert_eq!(out["tracks"].as_array().unwrap().len(), 1);
    // MP3 frames pad the end; the decoded length is within a frame or two of the source.
    let ms = out["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!((ms - source).abs() < 0.1, "{ms} vs {source}");

    // Our own output goes back in through libopus.
    let id = out["id"].as_str().unwrap();
    let opus = env.archive(id).join("mix.opus");
    let copy = env.path("again.opus");
    std::fs::copy(&opus, &copy).unwrap();
    let again = env.json(&["import", copy.to_str().unwrap(), "--speaker", "Echo"]);
    assert!(
        (again["duration_ms"].as_i64().unwrap() - out["duration_ms"].as_i64().unwrap()).abs() <= 40
    );
}

#[test]
fn golden_archive_v1_still_reads() {
    // Made by roomtape 0.1.0 (`roomtape import --split-channels`); never regenerate it.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-archive-v1");
    let manifest =
        roomtape_core::Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest.version, 1);
    assert_eq!(manifest.tracks.len(), 2);
    assert_eq!(manifest.tracks[0].speaker_name, "Ana");
    assert_eq!(manifest.tracks[1].speaker_name, "Bo");
    for t in &manifest.tracks {
        let bytes = std::fs::read(dir.join(&t.file)).unwrap();
        let pcm = roomtape_ingest::decode_all(&bytes, 48_000).unwrap();
        let ms = pcm.len() as i64 / 48;
        assert!(
            (ms - t.duration_ms).abs() <= 1,
            "{} plays {ms} ms, manifest says {}",
            t.file,
            t.duration_ms
        );
        assert!(pcm.iter().any(|s| s.abs() > 0.1), "{} holds speech", t.file);
        let r = roomtape_ingest::oggopus::read_bytes(&bytes).unwrap();
        assert_eq!(r.tags().get("TITLE"), Some(t.speaker_name.as_str()));
    }
    let mix = std::fs::read(dir.join("mix.opus")).unwrap();
    let pcm = roomtape_ingest::decode_all(&mix, 16_000).unwrap();
    assert!((pcm.len() as i64 / 16 - manifest.duration_ms()).abs() <= 1);
    let peaks: roomtape_ingest::Peaks =
        serde_json::from_slice(&std::fs::read(dir.join("peaks.json")).unwrap()).unwrap();
    assert_eq!(peaks.tracks.len(), 2);
}
