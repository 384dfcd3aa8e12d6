//! `thumbnail`: bounded decoding, aspect kept, never upscaled, typed errors; `square_thumbnail`:
//! the middle square of it.

use std::io::Cursor;

use blobs::{ThumbnailError, sniff, square_thumbnail, thumbnail};
use image::{GrayImage, ImageFormat, RgbImage, RgbaImage};

fn encode(image: impl Into<image::DynamicImage>, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.into().write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    })
}

#[test]
fn a_2000_by_1000_png_gives_320_by_160() {
    let png = encode(gradient(2000, 1000), ImageFormat::Png);
    let thumb = thumbnail(&png, 320).expect("thumbnail");
    assert_eq!((thumb.width, thumb.height), (2000, 1000));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (320, 160));
    // No alpha: a JPEG, and the bytes say so too.
    assert_eq!(thumb.content_type, "image/jpeg");
    assert_eq!(sniff(&thumb.bytes), Some("image/jpeg"));
    let decoded = image::load_from_memory(&thumb.bytes).expect("decodes");
    assert_eq!((decoded.width(), decoded.height()), (320, 160));
}

#[test]
fn portrait_keeps_its_aspect() {
    let png = encode(gradient(600, 1200), ImageFormat::Png);
    let thumb = thumbnail(&png, 320).expect("thumbnail");
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (160, 320));
}

#[test]
fn alpha_gives_a_png() {
    let image = RgbaImage::from_fn(400, 200, |x, _| image::Rgba([255, 0, 0, (x % 256) as u8]));
    let thumb = thumbnail(&encode(image, ImageFormat::Png), 100).expect("thumbnail");
    assert_eq!(thumb.content_type, "image/png");
    assert_eq!(sniff(&thumb.bytes), Some("image/png"));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (100, 50));
    let decoded = image::load_from_memory(&thumb.bytes).expect("decodes");
    assert!(decoded.color().has_alpha());
}

#[test]
fn a_tiny_image_is_not_upscaled() {
    let png = encode(gradient(10, 10), ImageFormat::Png);
    let thumb = thumbnail(&png, 320).expect("thumbnail");
    assert_eq!((thumb.width, thumb.height), (10, 10));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (10, 10));
    let decoded = image::load_from_memory(&thumb.bytes).expect("decodes");
    assert_eq!((decoded.width(), decoded.height()), (10, 10));
}

#[test]
fn jpeg_gif_and_webp_sources_work() {
    for format in [ImageFormat::Jpeg, ImageFormat::Gif, ImageFormat::WebP] {
        let bytes = encode(gradient(640, 480), format);
        let thumb = thumbnail(&bytes, 64).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!((thumb.width, thumb.height), (640, 480), "{format:?}");
        assert_eq!(
            (thumb.thumb_width, thumb.thumb_height),
            (64, 48),
            "{format:?}"
        );
    }
}

#[test]
fn garbage_is_an_error() {
    assert!(matches!(
        thumbnail(b"this is not an image at all", 320),
        Err(ThumbnailError::Unsupported)
    ));
    assert!(matches!(
        thumbnail(b"", 320),
        Err(ThumbnailError::Unsupported)
    ));
    // HTML is not an image whatever it claimed.
    assert!(matches!(
        thumbnail(b"<!DOCTYPE html><html><script>alert(1)</script>", 320),
        Err(ThumbnailError::Unsupported)
    ));
}

#[test]
fn a_truncated_png_is_corrupt() {
    let png = encode(gradient(300, 300), ImageFormat::Png);
    for cut in [20, 60, png.len() / 2, png.len() - 20] {
        match thumbnail(&png[..cut], 100) {
            Err(ThumbnailError::Corrupt(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // A PNG signature and then noise.
    let mut noise = png[..8].to_vec();
    noise.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    assert!(matches!(
        thumbnail(&noise, 100),
        Err(ThumbnailError::Corrupt(_))
    ));
}

#[test]
fn too_wide_is_refused_before_decoding() {
    // 20,000 px wide, 1 px tall: tiny as a file, over the 16,384 px limit.
    let png = encode(GrayImage::new(20_000, 1), ImageFormat::Png);
    assert!(png.len() < 10_000);
    match thumbnail(&png, 320) {
        Err(ThumbnailError::TooLarge(_)) => {}
        other => panic!("expected TooLarge: {other:?}"),
    }
}

#[test]
fn too_many_pixels_is_refused() {
    // 16,000 × 16,000 within the side limit, but 768 MB as RGB: over the 256 MiB allocation
    // limit. A PNG header claiming that size is enough to be refused (no pixels needed).
    let mut png = encode(RgbImage::new(1, 1), ImageFormat::Png);
    // IHDR's width and height are bytes 16..24 (after the signature, length and type); its CRC
    // follows, so fix that too.
    png[16..20].copy_from_slice(&16_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&16_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    match thumbnail(&png, 320) {
        Err(ThumbnailError::TooLarge(_)) => {}
        other => panic!("expected TooLarge: {other:?}"),
    }
}

#[test]
fn max_side_zero_counts_as_one() {
    let png = encode(gradient(30, 20), ImageFormat::Png);
    let thumb = thumbnail(&png, 0).expect("thumbnail");
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (1, 1));
}

/// CRC-32 (IEEE), as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_square_thumbnail_is_the_middle_square_scaled_down_never_up() {
    // Left third red, middle third green, right third blue: the middle square is green.
    let wide = RgbImage::from_fn(900, 300, |x, _| match x / 300 {
        0 => image::Rgb([255, 0, 0]),
        1 => image::Rgb([0, 255, 0]),
        _ => image::Rgb([0, 0, 255]),
    });
    let thumb = square_thumbnail(&encode(wide, ImageFormat::Png), 128).expect("square");
    assert_eq!((thumb.width, thumb.height), (900, 300));
    assert_eq!((thumb.thumb_width, thumb.thumb_height), (128, 128));
    assert_eq!(thumb.content_type, "image/jpeg");
    let decoded = image::load_from_memory(&thumb.bytes)
        .expect("decodes")
        .to_rgb8();
    assert_eq!(decoded.dimensions(), (128, 128));
    for (x, y) in [(2, 2), (64, 64), (125, 125)] {
        let p = decoded.get_pixel(x, y).0;
        assert!(p[1] > 200 && p[0] < 60 && p[2] < 60, "({x}, {y}) is {p:?}");
    }

    let tall = encode(gradient(40, 90), ImageFormat::Png);
    let small = square_thumbnail(&tall, 128).expect("square");
    assert_eq!((small.thumb_width, small.thumb_height), (40, 40));

    let alpha = RgbaImage::from_fn(300, 200, |_, _| image::Rgba([1, 2, 3, 100]));
    let thumb = square_thumbnail(&encode(alpha, ImageFormat::Png), 64).expect("square");
    assert_eq!(thumb.content_type, "image/png");
    assert!(matches!(
        square_thumbnail(b"not an image", 64),
        Err(ThumbnailError::Unsupported)
    ));
}
