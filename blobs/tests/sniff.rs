//! `sniff`: the content type from the bytes, never HTML-like.

use std::io::Cursor;

use blobs::sniff;
use image::{ImageFormat, RgbImage};

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

#[test]
fn a_real_png_is_image_png() {
    assert_eq!(sniff(&png(16, 8)), Some("image/png"));
}

#[test]
fn a_jpeg_and_a_gif_are_recognised() {
    let image = RgbImage::from_pixel(8, 8, image::Rgb([10, 20, 30]));
    for (format, mime) in [
        (ImageFormat::Jpeg, "image/jpeg"),
        (ImageFormat::Gif, "image/gif"),
    ] {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).expect("encode");
        assert_eq!(sniff(&out.into_inner()), Some(mime));
    }
}

#[test]
fn a_pdf_header_is_application_pdf() {
    assert_eq!(
        sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
        Some("application/pdf")
    );
}

#[test]
fn html_bytes_are_not_recognised() {
    for html in [
        b"<!DOCTYPE html><html><script>alert(1)</script>".as_slice(),
        b"<html><body onload=alert(1)>",
        b"  \n<!doctype HTML><title>x</title>",
        b"<script>alert(1)</script>",
        b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
    ] {
        assert_eq!(sniff(html), None, "{}", String::from_utf8_lossy(html));
    }
}

#[test]
fn html_claiming_to_be_png_is_not_png() {
    // What the acceptance test uploads with `Content-Type: image/png`.
    assert_eq!(
        sniff(b"<!DOCTYPE html><html><script>alert(1)</script></html>"),
        None
    );
}

#[test]
fn random_bytes_are_not_recognised() {
    // A fixed pseudo-random sequence (xorshift), so a failure reproduces.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert_eq!(sniff(&bytes), None);
    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(b"plain text, nothing else"), None);
}
