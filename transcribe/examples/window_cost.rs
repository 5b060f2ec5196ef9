//! Where one window's time goes: whisper.cpp's decoding of the same audio under different
//! settings, median of a few runs each. `cargo run --release -p roomtape-transcribe
//! --example window_cost -- MODEL.bin TRACK.wav [SECONDS]`
use std::time::Instant;
use whisper_rs::{
    DtwMode, DtwModelPreset, DtwParameters, FullParams, SamplingStrategy, WhisperContext,
    WhisperContextParameters,
};

fn wav(path: &str) -> Vec<f32> {
    let b = std::fs::read(path).expect("wav");
    let data = b.windows(4).position(|w| w == b"data").expect("data chunk") + 8;
    b[data..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
        .collect()
}

fn ctx(model: &str, dtw: bool, flash: bool) -> WhisperContext {
    let mut p = WhisperContextParameters {
        use_gpu: false,
        flash_attn: flash,
        ..Default::default()
    };
    if dtw {
        p.dtw_parameters = DtwParameters {
            mode: DtwMode::ModelPreset {
                model_preset: DtwModelPreset::TinyEn,
            },
            ..Default::default()
        };
    }
    WhisperContext::new_with_params(model, p).expect("model")
}

fn main() {
    whisper_rs::install_logging_hooks();
    let a: Vec<String> = std::env::args().collect();
    let pcm = wav(&a[2]);
    let secs: f32 = a.get(3).map_or(29.0, |s| s.parse().unwrap());
    let audio = &pcm[..((secs * 16000.0) as usize).min(pcm.len())];
    let prompt = "A call. Reader, Operator.";
    type Tweak = fn(&mut FullParams);
    let variants: Vec<(&str, bool, bool, bool, Tweak)> = vec![
        ("ours: dtw, token ts, prompt", true, false, true, |_| {}),
        ("no prompt", true, false, false, |_| {}),
        ("no dtw context", false, false, true, |_| {}),
        ("no token ts, no dtw", false, false, true, |p| {
            p.set_token_timestamps(false)
        }),
        ("flash attn, no dtw", false, true, true, |_| {}),
        ("no temperature fallback", true, false, true, |p| {
            p.set_temperature_inc(0.0)
        }),
        ("audio_ctx to length", true, false, true, |_| {}),
    ];
    {
        let c = ctx(&a[1], false, false);
        let mut st = c.create_state().unwrap();
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            st.pcm_to_mel(audio, 1).unwrap();
            let mel = t.elapsed().as_secs_f64();
            st.encode(0, 1).unwrap();
            times.push((t.elapsed().as_secs_f64(), mel));
        }
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!(
            "{:28} {:6.3} s  (mel {:.3} s)",
            "mel + encoder only", times[1].0, times[1].1
        );
    }
    if a.get(4).is_some_and(|s| s == "encoder") {
        return;
    }
    for (name, dtw, flash, prompted, tweak) in variants {
        let c = ctx(&a[1], dtw, flash);
        let mut st = c.create_state().unwrap();
        let mut times = Vec::new();
        let mut text = String::new();
        for _ in 0..3 {
            let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
            p.set_n_threads(1);
            p.set_no_context(true);
            p.set_token_timestamps(true);
            p.set_language(Some("en"));
            p.set_suppress_nst(true);
            if prompted {
                p.set_initial_prompt(prompt);
            }
            tweak(&mut p);
            if name.starts_with("audio_ctx") {
                p.set_audio_ctx(((secs / 30.0 * 1500.0).ceil() as i32 + 64).min(1500));
            }
            let t = Instant::now();
            st.full(p, audio).unwrap();
            times.push(t.elapsed().as_secs_f64());
            text = st
                .as_iter()
                .map(|s| s.to_str_lossy().unwrap().into_owned())
                .collect();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name:28} {:6.3} s  segs {:2}  {}",
            times[1],
            st.full_n_segments(),
            &text.chars().take(60).collect::<String>()
        );
    }
}
