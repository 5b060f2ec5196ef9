//! Installed Whisper models: `DATA/models/<name>.bin` (ggml) with `<name>.json` beside it.
//! `import` converts a CTranslate2 (faster-whisper) model directory, or its parts, to ggml.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ct2::Ct2Model;
use crate::ggml;
use crate::{Error, Result};

/// What `<name>.json` records about an installed model.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    pub name: String,
    /// Human description, e.g. `tiny (4 layers, 384 wide, English-only)`.
    pub description: String,
    pub english_only: bool,
    pub bytes: u64,
    /// Where it came from (the files converted).
    pub source: Vec<String>,
}

/// Checks a model name: letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "model name {:?}: use letters, digits, '.', '_' and '-'",
            roomtape_core::truncate_for_message(name)
        )))
    }
}

/// The files of a CTranslate2 model found among `inputs` (directories or files).
#[derive(Debug, Default)]
struct Found {
    whole: Option<PathBuf>,
    parts: Vec<(u32, PathBuf)>,
    vocabulary: Option<PathBuf>,
}

fn scan(inputs: &[PathBuf]) -> Result<Found> {
    let mut found = Found::default();
    let consider = |p: PathBuf, found: &mut Found| {
        let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            return;
        };
        if name == "model.bin" {
            found.whole = Some(p);
        } else if let Some(n) = name
            .strip_prefix("model.bin.part")
            .and_then(|n| n.parse().ok())
        {
            found.parts.push((n, p));
        } else if name == "vocabulary.txt" {
            found.vocabulary = Some(p);
        }
    };
    for input in inputs {
        if input.is_dir() {
            let mut stack = vec![input.clone()];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
                    let p = e.map_err(|e| Error::io(&dir, e))?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        consider(p, &mut found);
                    }
                }
            }
        } else if input.is_file() {
            consider(input.clone(), &mut found);
        } else {
            return Err(Error::Invalid(format!(
                "{}: no such file or directory",
                input.display()
            )));
        }
    }
    found.parts.sort();
    Ok(found)
}

/// Converts the CTranslate2 Whisper model in `inputs` into `models_dir/<name>.bin`.
pub fn import(inputs: &[PathBuf], name: &str, models_dir: &Path) -> Result<ModelInfo> {
    check_name(name)?;
    let found = scan(inputs)?;
    let (bytes, sources) = match (&found.whole, found.parts.as_slice()) {
        (Some(p), _) => (
            std::fs::read(p).map_err(|e| Error::io(p, e))?,
            vec![p.clone()],
        ),
        (None, []) => {
            return Err(Error::Model(
                "no model.bin (or model.bin.part1, part2, …) in the given paths".into(),
            ));
        }
        (None, parts) => {
            for (i, (n, p)) in parts.iter().enumerate() {
                if *n != i as u32 + 1 {
                    return Err(Error::Model(format!(
                        "model parts must be numbered 1, 2, …; found part {n} at {}",
                        p.display()
                    )));
                }
            }
            let mut all = Vec::new();
            for (_, p) in parts {
                all.extend(std::fs::read(p).map_err(|e| Error::io(p, e))?);
            }
            (all, parts.iter().map(|(_, p)| p.clone()).collect())
        }
    };
    let vocab_path = found
        .vocabulary
        .ok_or_else(|| Error::Model("no vocabulary.txt in the given paths".into()))?;
    let vocabulary = std::fs::read_to_string(&vocab_path).map_err(|e| Error::io(&vocab_path, e))?;
    let model = Ct2Model::parse(&bytes)?;

    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    let target = models_dir.join(format!("{name}.bin"));
    let tmp = models_dir.join(format!(".{name}.bin.partial"));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = ggml::convert(&model, &vocabulary, &mut w).and_then(|hp| {
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        Ok(hp)
    });
    let hp = match result {
        Ok(hp) => hp,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let info = ggml::check_file(&tmp)?;
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&tmp, e))?;
    let meta = ModelInfo {
        name: name.to_string(),
        description: hp.describe(),
        english_only: hp.english_only(),
        bytes: info.bytes,
        source: sources.iter().map(|p| p.display().to_string()).collect(),
    };
    let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
    let meta_path = models_dir.join(format!("{name}.json"));
    std::fs::write(&meta_path, json).map_err(|e| Error::io(&meta_path, e))?;
    Ok(meta)
}

/// Installs a copy of the f16 ggml model `spec` (an installed name or a path) with its weight
/// matrices in `q`, as `models_dir/<name>.bin`.
pub fn quantize(
    spec: &str,
    q: crate::quantize::Quant,
    name: &str,
    models_dir: &Path,
) -> Result<ModelInfo> {
    check_name(name)?;
    let (_, source) = resolve(spec, models_dir)?;
    let bytes = std::fs::read(&source).map_err(|e| Error::io(&source, e))?;
    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    let target = models_dir.join(format!("{name}.bin"));
    if target == source {
        return Err(Error::Invalid(format!(
            "the quantised model needs a name of its own (not {name})"
        )));
    }
    let tmp = models_dir.join(format!(".{name}.bin.partial"));
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let result = crate::quantize::quantize(&bytes, q, &mut w).and_then(|_| {
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))
    });
    if let Err(e) = result.and_then(|()| ggml::check_file(&tmp).map(drop)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let info = ggml::check_file(&tmp)?;
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&tmp, e))?;
    let meta = ModelInfo {
        name: name.to_string(),
        description: format!("{}, {}", info.hparams.describe(), q.name()),
        english_only: info.hparams.english_only(),
        bytes: info.bytes,
        source: vec![source.display().to_string()],
    };
    let json = serde_json::to_vec_pretty(&meta).unwrap_or_default();
    let meta_path = models_dir.join(format!("{name}.json"));
    std::fs::write(&meta_path, json).map_err(|e| Error::io(&meta_path, e))?;
    Ok(meta)
}

/// Installed models, by name.
pub fn list(models_dir: &Path) -> Result<Vec<ModelInfo>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(models_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(models_dir, e)),
    };
    for e in entries {
        let p = e.map_err(|e| Error::io(models_dir, e))?.path();
        if p.extension().and_then(|x| x.to_str()) != Some("bin") {
            continue;
        }
        let Some(name) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = p.with_extension("json");
        let info = std::fs::read(&meta)
            .ok()
            .and_then(|b| serde_json::from_slice::<ModelInfo>(&b).ok())
            .unwrap_or_else(|| ModelInfo {
                name: name.to_string(),
                description: "ggml model".into(),
                english_only: false,
                bytes: p.metadata().map(|m| m.len()).unwrap_or(0),
                source: vec![],
            });
        out.push(info);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A model given as a path to a ggml file, or as the name of an installed model.
pub fn resolve(spec: &str, models_dir: &Path) -> Result<(String, PathBuf)> {
    let as_path = Path::new(spec);
    if as_path.is_file() {
        let name = as_path
            .file_stem()
            .map(|s| s.to_string_lossy().trim_start_matches("ggml-").to_string())
            .unwrap_or_else(|| "custom".into());
        return Ok((name, as_path.to_path_buf()));
    }
    // A path (a directory part, or a `.bin` file name; names such as `tiny.en` have dots too)
    // that is not a file: say so, rather than judge it as a model name.
    if spec.contains('/') || spec.contains(std::path::MAIN_SEPARATOR) || spec.ends_with(".bin") {
        return Err(Error::Model(if as_path.exists() {
            format!("model {spec:?} is not a file")
        } else {
            format!("model file {spec:?} does not exist")
        }));
    }
    check_name(spec)?;
    let p = models_dir.join(format!("{spec}.bin"));
    if p.is_file() {
        return Ok((spec.to_string(), p));
    }
    let have: Vec<String> = list(models_dir)?.into_iter().map(|m| m.name).collect();
    Err(Error::Model(format!(
        "no model {spec:?} in {} (installed: {}); `roomtape model import` adds one, `make run` provisions the defaults",
        models_dir.display(),
        if have.is_empty() {
            "none".to_string()
        } else {
            have.join(", ")
        }
    )))
}
