//! A host's podcast artwork, `/feeds/<username>.png`: podcast directories refuse a feed
//! without a square image of 1400–3000 px (Apple), so every host gets one made from their
//! name — a colour of their own, their initials, two tape reels — until they bring their
//! own. Drawn here pixel by pixel (no font files, no image service): the same name always
//! gives the same bytes.

use sha2::{Digest as _, Sha256};

/// The artwork's side in pixels: Apple's minimum, so it is as small as directories accept.
pub const SIDE: u32 = 1400;

/// 5×7 capitals and digits, one string per glyph, rows top to bottom.
const GLYPHS: [(char, [&str; 7]); 36] = [
    (
        'A',
        [
            ".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'B',
        [
            "####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.",
        ],
    ),
    (
        'C',
        [
            ".####", "#....", "#....", "#....", "#....", "#....", ".####",
        ],
    ),
    (
        'D',
        [
            "####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####.",
        ],
    ),
    (
        'E',
        [
            "#####", "#....", "#....", "####.", "#....", "#....", "#####",
        ],
    ),
    (
        'F',
        [
            "#####", "#....", "#....", "####.", "#....", "#....", "#....",
        ],
    ),
    (
        'G',
        [
            ".####", "#....", "#....", "#.###", "#...#", "#...#", ".####",
        ],
    ),
    (
        'H',
        [
            "#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'I',
        [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####",
        ],
    ),
    (
        'J',
        [
            "..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..",
        ],
    ),
    (
        'K',
        [
            "#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#",
        ],
    ),
    (
        'L',
        [
            "#....", "#....", "#....", "#....", "#....", "#....", "#####",
        ],
    ),
    (
        'M',
        [
            "#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'N',
        [
            "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'O',
        [
            ".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
    ),
    (
        'P',
        [
            "####.", "#...#", "#...#", "####.", "#....", "#....", "#....",
        ],
    ),
    (
        'Q',
        [
            ".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#",
        ],
    ),
    (
        'R',
        [
            "####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#",
        ],
    ),
    (
        'S',
        [
            ".####", "#....", "#....", ".###.", "....#", "....#", "####.",
        ],
    ),
    (
        'T',
        [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
        ],
    ),
    (
        'U',
        [
            "#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
    ),
    (
        'V',
        [
            "#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..",
        ],
    ),
    (
        'W',
        [
            "#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#",
        ],
    ),
    (
        'X',
        [
            "#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#",
        ],
    ),
    (
        'Y',
        [
            "#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..",
        ],
    ),
    (
        'Z',
        [
            "#####", "....#", "...#.", "..#..", ".#...", "#....", "#####",
        ],
    ),
    (
        '0',
        [
            ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.",
        ],
    ),
    (
        '1',
        [
            "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        '2',
        [
            ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####",
        ],
    ),
    (
        '3',
        [
            "####.", "....#", "....#", ".###.", "....#", "....#", "####.",
        ],
    ),
    (
        '4',
        [
            "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.",
        ],
    ),
    (
        '5',
        [
            "#####", "#....", "####.", "....#", "....#", "#...#", ".###.",
        ],
    ),
    (
        '6',
        [
            ".###.", "#....", "#....", "####.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '7',
        [
            "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...",
        ],
    ),
    (
        '8',
        [
            ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '9',
        [
            ".###.", "#...#", "#...#", ".####", "....#", "....#", ".###.",
        ],
    ),
];

fn glyph(c: char) -> Option<&'static [&'static str; 7]> {
    GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| rows)
}

/// Up to two initials we can draw: the first letters of the first two words of `name`
/// (else of `fallback`), capitals and digits only.
pub fn initials(name: &str, fallback: &str) -> String {
    let pick = |s: &str| -> String {
        s.split(|c: char| c.is_whitespace() || c == '-' || c == '_' || c == '.')
            .filter_map(|w| w.chars().next())
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| glyph(*c).is_some())
            .take(2)
            .collect()
    };
    let i = pick(name);
    if i.is_empty() { pick(fallback) } else { i }
}

/// HSL (hue in turns) to RGB.
fn hsl(h: f32, s: f32, l: f32) -> [f32; 3] {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = (h.rem_euclid(1.0)) * 6.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    [r + m, g + m, b + m]
}

/// How much of the pixel at distance `d` from an edge lies inside (`d` < 0 is inside): one
/// pixel of smoothing, so curves are not jagged.
fn cover(d: f32) -> f32 {
    (0.5 - d).clamp(0.0, 1.0)
}

/// The artwork of a host (`seed` chooses the colour: their username) as a PNG.
pub fn png(display_name: &str, seed: &str) -> Vec<u8> {
    let side = SIDE as usize;
    let hash = Sha256::digest(seed.as_bytes());
    let hue = f32::from(u16::from_be_bytes([hash[0], hash[1]])) / 65_536.0;
    // Dark enough that white on it is far above 4.5:1.
    let bg = hsl(hue, 0.55, 0.28);
    let accent = hsl(hue + 0.08, 0.65, 0.62);
    let white = [0.97f32, 0.97, 0.97];

    // Coverage of white and of the accent per pixel, drawn shape by shape.
    let mut ink = vec![0.0f32; side * side];
    let mut tint = vec![0.0f32; side * side];

    // Initials: solid 5×7 cells of 80 px, centred in the top half.
    let text = initials(display_name, seed);
    let cell = 80usize;
    let gap = 0usize;
    let letter_w = 5 * cell;
    let width = text.chars().count() * letter_w + text.chars().count().saturating_sub(1) * 60;
    let top = 180usize;
    let mut x0 = (side.saturating_sub(width)) / 2;
    for c in text.chars() {
        if let Some(rows) = glyph(c) {
            for (gy, row) in rows.iter().enumerate() {
                for (gx, on) in row.bytes().enumerate() {
                    if on != b'#' {
                        continue;
                    }
                    let (px, py) = (x0 + gx * cell, top + gy * cell);
                    for y in py + gap / 2..py + cell - gap / 2 {
                        for x in px + gap / 2..px + cell - gap / 2 {
                            ink[y * side + x] = 1.0;
                        }
                    }
                }
            }
        }
        x0 += letter_w + 60;
    }

    // Two reels: rings with three spokes' worth of holes, and the tape band between them.
    let reels = [(440.0f32, 1010.0f32), (960.0, 1010.0)];
    let (r_out, r_in, hub) = (190.0f32, 150.0f32, 46.0f32);
    for y in 760..1260usize {
        for x in 180..1220usize {
            let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
            let i = y * side + x;
            for &(cx, cy) in &reels {
                let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
                // The ring: inside r_out, outside r_in.
                let ring = cover(d - r_out).min(cover(r_in - d));
                let centre = cover(d - hub);
                ink[i] = ink[i].max(ring).max(centre);
                // The tape wound on the reel, in the accent colour.
                tint[i] = tint[i].max(cover(d - (r_in - 18.0)).min(cover(hub + 24.0 - d)));
            }
        }
    }
    // The band of tape across the bottom of both reels.
    for y in 1176..1200usize {
        for x in 440..960usize {
            tint[y * side + x] = 1.0;
        }
    }

    let mut rgb = Vec::with_capacity(side * side * 3);
    for i in 0..side * side {
        for ch in 0..3 {
            let base = bg[ch] + (accent[ch] - bg[ch]) * tint[i];
            let v = base + (white[ch] - base) * ink[i];
            rgb.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
        }
    }

    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, SIDE, SIDE);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Balanced);
        // Writing to memory cannot fail; the header and data are ours.
        if let Ok(mut w) = enc.write_header() {
            let _ = w.write_image_data(&rgb);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_drawable_letters_of_the_first_two_words() {
        assert_eq!(initials("Ada Lovelace", "ada"), "AL");
        assert_eq!(initials("élodie durand", "elodie"), "D");
        assert_eq!(initials("ÉÉ", "bob_smith"), "BS");
        assert_eq!(initials("", ""), "");
    }

    #[test]
    fn the_artwork_is_a_square_rgb_png_apple_accepts_and_the_same_each_time() {
        let a = png("Ada Lovelace", "ada");
        assert_eq!(a, png("Ada Lovelace", "ada"));
        assert_ne!(
            a,
            png("Ada Lovelace", "grace"),
            "the colour follows the seed"
        );
        let dec = png::Decoder::new(std::io::Cursor::new(&a));
        let info = dec.read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), (1400, 1400));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert!(a.len() < 512 << 10, "{} bytes", a.len());
    }
}
