//! Reading CTranslate2 model files (`model.bin`), the format faster-whisper models come in.
//!
//! Layout (little-endian): `u32 version` (5 or 6), string spec name, `u32 revision`,
//! `u32 n_vars`, then per variable: string name, `u8 rank`, `u32 dims[rank]`, `u8 dtype`,
//! `u32 nbytes`, data; then `u32 n_aliases` and pairs of strings. A string is a `u16` length
//! that counts a trailing NUL, the bytes, and the NUL.

use std::collections::HashMap;

use crate::{Error, Result};

/// Element types of CTranslate2 variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One variable: its shape, type and raw little-endian bytes.
#[derive(Clone, Debug)]
pub struct Var<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Var<'_> {
    /// Elements in the variable.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True for a scalar or empty variable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of an integer scalar.
    pub fn scalar_int(&self) -> Option<i64> {
        let d = self.data;
        Some(match self.dtype {
            DType::I8 => i64::from(d.first().copied()? as i8),
            DType::I16 => i64::from(i16::from_le_bytes([*d.first()?, *d.get(1)?])),
            DType::I32 => i64::from(i32::from_le_bytes(d.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }

    /// The elements as `f32`, whatever the stored float type.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        Ok(match self.dtype {
            DType::F32 => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::Bf16 => self
                .data
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::Model(format!(
                    "expected floating-point weights, found {other:?}"
                )));
            }
        })
    }
}

/// A parsed CTranslate2 model, borrowing the file's bytes.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub revision: u32,
    vars: HashMap<String, Var<'a>>,
    aliases: HashMap<String, String>,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                Error::Model(format!(
                    "model.bin ends early (wanted {n} bytes at offset {}, file has {}): truncated?",
                    self.pos,
                    self.b.len()
                ))
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let n = usize::from(self.u16()?);
        let s = self.take(n)?;
        let s = s.strip_suffix(&[0]).unwrap_or(s);
        String::from_utf8(s.to_vec())
            .map_err(|_| Error::Model("a name in model.bin is not UTF-8".into()))
    }
}

impl<'a> Ct2Model<'a> {
    /// Parses `bytes` (the whole `model.bin`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut c = Cursor { b: bytes, pos: 0 };
        let version = c.u32()?;
        if !(5..=6).contains(&version) {
            return Err(Error::Model(format!(
                "not a CTranslate2 model (binary version {version}; expected 5 or 6)"
            )));
        }
        let spec = c.string()?;
        let revision = c.u32()?;
        let n = c.u32()? as usize;
        if n > 100_000 {
            return Err(Error::Model(format!("implausible variable count {n}")));
        }
        let mut vars = HashMap::with_capacity(n);
        for _ in 0..n {
            let name = c.string()?;
            let rank = usize::from(c.u8()?);
            if rank > 8 {
                return Err(Error::Model(format!("{name}: implausible rank {rank}")));
            }
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(c.u32()? as usize);
            }
            let code = c.u8()?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| Error::Model(format!("{name}: unknown data type {code}")))?;
            let nbytes = c.u32()? as usize;
            let elements: usize = dims.iter().product();
            if elements.checked_mul(dtype.size()) != Some(nbytes) {
                return Err(Error::Model(format!(
                    "{name}: {nbytes} bytes do not match shape {dims:?} of {dtype:?}"
                )));
            }
            let data = c.take(nbytes)?;
            vars.insert(name, Var { dims, dtype, data });
        }
        let mut aliases = HashMap::new();
        if c.pos < bytes.len() {
            let na = c.u32()?;
            for _ in 0..na {
                let alias = c.string()?;
                let target = c.string()?;
                aliases.insert(alias, target);
            }
        }
        Ok(Ct2Model {
            spec,
            revision,
            vars,
            aliases,
        })
    }

    /// A variable by name, following aliases.
    pub fn get(&self, name: &str) -> Option<&Var<'a>> {
        self.vars
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|t| self.vars.get(t)))
    }

    /// A variable that must exist.
    pub fn need(&self, name: &str) -> Result<&Var<'a>> {
        self.get(name)
            .ok_or_else(|| Error::Model(format!("missing variable {name}: not a Whisper model")))
    }

    /// True when `name` is an alias (not stored itself).
    pub fn is_alias(&self, name: &str) -> bool {
        self.aliases.contains_key(name) && !self.vars.contains_key(name)
    }

    /// The alias target of `name`, if it is one.
    pub fn alias_of(&self, name: &str) -> Option<&str> {
        self.aliases.get(name).map(String::as_str)
    }

    /// Every variable name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }
}
