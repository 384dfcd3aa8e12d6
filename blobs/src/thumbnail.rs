//! [`thumbnail`]: a bounded decode of an uploaded image and a small PNG or JPEG of it;
//! [`square_thumbnail`]: the same, of the image's middle square (an avatar).

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, metadata::Orientation};

/// The widest and tallest image decoded, in pixels.
pub const MAX_SIDE_PX: u32 = 16_384;

/// The most memory a decode may allocate (the decoded pixels count): 256 MiB, e.g. 8192×8192
/// RGBA.
pub const MAX_DECODE_ALLOC: u64 = 256 * 1024 * 1024;

/// The quality of JPEG thumbnails (1-100).
const JPEG_QUALITY: u8 = 80;

/// A thumbnail and the dimensions of the image it was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thumbnail {
    /// The encoded thumbnail.
    pub bytes: Vec<u8>,
    /// `image/png` (the original has an alpha channel) or `image/jpeg` (it has none).
    pub content_type: &'static str,
    /// The original's width and height as displayed (after its EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// The thumbnail's width and height.
    pub thumb_width: u32,
    pub thumb_height: u32,
}

/// Why no thumbnail was made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// Not an image format this crate decodes (PNG, JPEG, GIF, WebP, BMP), or not an image.
    #[error("not an image in a supported format")]
    Unsupported,
    /// Wider or taller than [`MAX_SIDE_PX`], or more pixels than [`MAX_DECODE_ALLOC`] holds.
    #[error("the image is too large to decode: {0}")]
    TooLarge(String),
    /// The bytes claim an image format but do not decode as one (truncated, corrupt).
    #[error("the image does not decode: {0}")]
    Corrupt(String),
    /// Encoding the thumbnail failed.
    #[error("encoding the thumbnail failed: {0}")]
    Encode(String),
}

impl From<ImageError> for ThumbnailError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::Limits(e) => Self::TooLarge(e.to_string()),
            ImageError::Unsupported(_) => Self::Unsupported,
            ImageError::Encoding(e) => Self::Encode(e.to_string()),
            e @ (ImageError::Decoding(_) | ImageError::Parameter(_) | ImageError::IoError(_)) => {
                Self::Corrupt(e.to_string())
            }
        }
    }
}

/// Decodes the image in `bytes` within bounds (at most [`MAX_SIDE_PX`] a side and
/// [`MAX_DECODE_ALLOC`] of pixels; an animation's first frame) and makes a thumbnail no larger
/// than `max_side` pixels on its longest side, keeping the aspect ratio and never upscaling
/// (a `max_side` of 0 counts as 1). It is a PNG when the original has an alpha channel, a JPEG
/// (quality 80) otherwise ([`Thumbnail::content_type`] says which), turned upright by the
/// original's EXIF orientation. Also returns the original's dimensions.
///
/// Errors (not an image, too big, corrupt) are a [`ThumbnailError`], never a panic: a panic in
/// a decoder on hostile bytes is caught and reported as [`ThumbnailError::Corrupt`].
///
/// CPU-bound and blocking (tens to hundreds of milliseconds for a photo): callers run it in
/// `tokio::task::spawn_blocking`, not on an async task.
pub fn thumbnail(bytes: &[u8], max_side: u32) -> Result<Thumbnail, ThumbnailError> {
    match catch_unwind(AssertUnwindSafe(|| make_thumbnail(bytes, max_side.max(1)))) {
        Ok(result) => result,
        Err(_) => Err(ThumbnailError::Corrupt("the decoder panicked".into())),
    }
}

fn make_thumbnail(bytes: &[u8], max_side: u32) -> Result<Thumbnail, ThumbnailError> {
    let (image, orientation) = decode(bytes)?;
    let (raw_width, raw_height) = (image.width(), image.height());
    let (thumb_raw_width, thumb_raw_height) = fit(raw_width, raw_height, max_side);
    // Resized first, turned after: rotating the small image, not the full-size one.
    let thumb = if (thumb_raw_width, thumb_raw_height) == (raw_width, raw_height) {
        image
    } else {
        image.thumbnail_exact(thumb_raw_width, thumb_raw_height)
    };
    upright(thumb, orientation, raw_width, raw_height)
}

/// Decodes the image in `bytes` within bounds (as [`thumbnail`] does), takes the largest square
/// from its middle and makes it at most `side` pixels a side (never upscaling; a `side` of 0
/// counts as 1): an avatar. PNG when the original has an alpha channel, JPEG otherwise,
/// upright by its EXIF orientation; [`Thumbnail::width`] and [`Thumbnail::height`] are the
/// original's (as displayed), `thumb_width` and `thumb_height` the square's.
///
/// CPU-bound and blocking, like [`thumbnail`]; a panic in a decoder is
/// [`ThumbnailError::Corrupt`].
pub fn square_thumbnail(bytes: &[u8], side: u32) -> Result<Thumbnail, ThumbnailError> {
    match catch_unwind(AssertUnwindSafe(|| make_square(bytes, side.max(1)))) {
        Ok(result) => result,
        Err(_) => Err(ThumbnailError::Corrupt("the decoder panicked".into())),
    }
}

/// Turns `thumb` upright and encodes it, with the original's size as displayed.
fn upright(
    mut thumb: DynamicImage,
    orientation: Orientation,
    raw_width: u32,
    raw_height: u32,
) -> Result<Thumbnail, ThumbnailError> {
    thumb.apply_orientation(orientation);
    let (width, height) = if turned(orientation) {
        (raw_height, raw_width)
    } else {
        (raw_width, raw_height)
    };
    encode(thumb, width, height)
}

fn make_square(bytes: &[u8], side: u32) -> Result<Thumbnail, ThumbnailError> {
    let (image, orientation) = decode(bytes)?;
    let (raw_width, raw_height) = (image.width(), image.height());
    // The middle square is the same square however the image is turned: cropped and resized
    // first, turned after.
    let short = raw_width.min(raw_height);
    let square = image.crop_imm(
        (raw_width - short) / 2,
        (raw_height - short) / 2,
        short,
        short,
    );
    let target = short.min(side);
    let thumb = if target == short {
        square
    } else {
        square.thumbnail_exact(target, target)
    };
    upright(thumb, orientation, raw_width, raw_height)
}

/// The image in `bytes`, decoded within the limits, and its EXIF orientation.
fn decode(bytes: &[u8]) -> Result<(DynamicImage, Orientation), ThumbnailError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE_PX);
    limits.max_image_height = Some(MAX_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);

    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ThumbnailError::Unsupported);
    }
    reader.limits(limits.clone());
    // The decoder checks the dimensions against the limits; the pixels are reserved here (as
    // `ImageReader::decode` does) before any are allocated.
    let mut decoder = reader.into_decoder()?;
    limits.reserve(decoder.total_bytes())?;
    let orientation = decoder.orientation()?;
    let image = DynamicImage::from_decoder(decoder)?;
    Ok((image, orientation))
}

/// Whether `orientation` swaps width and height.
fn turned(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// `thumb` encoded (PNG with alpha, JPEG without), described with the original's size.
fn encode(thumb: DynamicImage, width: u32, height: u32) -> Result<Thumbnail, ThumbnailError> {
    let mut out = Vec::new();
    let content_type = if thumb.color().has_alpha() {
        DynamicImage::ImageRgba8(thumb.to_rgba8()).write_with_encoder(PngEncoder::new(&mut out))?;
        "image/png"
    } else {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))?;
        "image/jpeg"
    };
    Ok(Thumbnail {
        bytes: out,
        content_type,
        width,
        height,
        thumb_width: thumb.width(),
        thumb_height: thumb.height(),
    })
}

/// The size of `width`×`height` scaled to fit in `max_side` on its longest side (rounded, at
/// least 1 pixel), or the size itself when it fits already.
fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| -> u32 {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest);
        u32::try_from(scaled).unwrap_or(max_side).clamp(1, max_side)
    };
    (scale(width), scale(height))
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fit_keeps_the_aspect_ratio_and_never_upscales() {
        assert_eq!(fit(2000, 1000, 320), (320, 160));
        assert_eq!(fit(1000, 2000, 320), (160, 320));
        assert_eq!(fit(10, 10, 320), (10, 10));
        assert_eq!(fit(320, 100, 320), (320, 100));
        assert_eq!(fit(16_384, 1, 320), (320, 1));
        assert_eq!(fit(999, 333, 100), (100, 33));
        assert_eq!(fit(5, 3, 1), (1, 1));
    }
}
