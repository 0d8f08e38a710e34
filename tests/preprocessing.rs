//! The network input made from a small synthetic picture, for the course's
//! GoogLeNet manifest, against the original program's arithmetic: resize the
//! shorter side to 224, crop the centre, RGB to BGR, minus 103/117/123. The
//! same picture in every format we take, rotated by EXIF, or with an alpha
//! channel, must give that tensor.

mod common;

use fast_image_resize::Resizer;
use image::{DynamicImage, ImageEncoder, RgbImage, RgbaImage};
use imagenet_classroom::decode::{decode, DecodeLimits, Format};
use imagenet_classroom::manifest::Manifest;
use imagenet_classroom::preprocess::Preprocessor;
use ndarray::Array4;

/// 300x200, at most 256 colours (so GIF keeps it exactly), smooth enough for JPEG.
fn picture() -> RgbImage {
    RgbImage::from_fn(300, 200, |x, y| {
        let r = (x * 8 / 300) * 32 + 16;
        let g = (y * 8 / 200) * 32 + 16;
        let b = ((x + y) * 4 / 500) * 64 + 32;
        image::Rgb([r as u8, g as u8, b as u8])
    })
}

fn googlenet() -> Preprocessor {
    let manifest = Manifest::load(&common::repo().join("models/googlenet.toml")).unwrap();
    Preprocessor::new(&manifest)
}

/// The original program's arithmetic, written out plainly.
fn original_arithmetic(picture: &RgbImage) -> Array4<f32> {
    let (w, h) = picture.dimensions();
    // int(side * 224 / shorter), as the original Python computed sizes.
    let (rw, rh) = (w * 224 / w.min(h), h * 224 / w.min(h));
    let resized = image::imageops::resize(picture, rw, rh, image::imageops::FilterType::Triangle);
    let (left, top) = ((rw - 224) / 2, (rh - 224) / 2);
    let mean_bgr = [103.0, 117.0, 123.0];
    Array4::from_shape_fn((1, 3, 224, 224), |(_, c, y, x)| {
        let pixel = resized.get_pixel(left + x as u32, top + y as u32);
        f32::from(pixel[2 - c]) - mean_bgr[c]
    })
}

fn tensor_of(bytes: &[u8], expected_format: Format) -> Array4<f32> {
    let p = googlenet();
    let decoded = decode(bytes, DecodeLimits::default(), p.resize_shorter_to()).unwrap();
    assert_eq!(decoded.format, expected_format);
    p.to_tensor(&p.resize(&mut Resizer::new(), &decoded.image))
}

/// Largest and mean absolute difference, in grey levels.
fn difference(a: &Array4<f32>, b: &Array4<f32>) -> (f32, f32) {
    assert_eq!(a.shape(), b.shape());
    let diffs: Vec<f32> = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).collect();
    let max = diffs.iter().copied().fold(0.0, f32::max);
    (max, diffs.iter().sum::<f32>() / diffs.len() as f32)
}

fn assert_close(what: &str, got: &Array4<f32>, max_allowed: f32, mean_allowed: f32) {
    let (max, mean) = difference(got, &original_arithmetic(&picture()));
    assert!(
        max <= max_allowed && mean <= mean_allowed,
        "{what}: differs from the original arithmetic by up to {max} (mean {mean}); \
         allowed {max_allowed} (mean {mean_allowed})"
    );
}

fn encode(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    bytes
}

#[test]
fn lossless_formats_give_the_original_arithmetic() {
    let picture = DynamicImage::ImageRgb8(picture());
    for (format, ours) in [
        (image::ImageFormat::Png, Format::Png),
        (image::ImageFormat::Gif, Format::Gif),
        (image::ImageFormat::Bmp, Format::Bmp),
        (image::ImageFormat::WebP, Format::WebP),
    ] {
        let tensor = tensor_of(&encode(&picture, format), ours);
        // Two bilinear resizers round differently by at most a level here and there.
        assert_close(&format!("{format:?}"), &tensor, 1.0, 0.1);
    }
}

#[test]
fn the_tensor_is_bgr_minus_the_caffe_mean() {
    // One flat colour survives any resize exactly, so the values are exact.
    let flat = RgbImage::from_pixel(300, 200, image::Rgb([200, 100, 50]));
    let tensor = tensor_of(&encode(&flat.into(), image::ImageFormat::Png), Format::Png);
    assert_eq!(tensor.shape(), &[1, 3, 224, 224]);
    for (c, value) in [(0, 50.0 - 103.0), (1, 100.0 - 117.0), (2, 200.0 - 123.0)] {
        assert!(tensor.index_axis(ndarray::Axis(1), c).iter().all(|v| *v == value), "channel {c}");
    }
}

#[test]
fn sixteen_bit_png_gives_the_same_tensor() {
    let wide = DynamicImage::ImageRgb8(picture()).into_rgb16();
    let tensor = tensor_of(&encode(&wide.into(), image::ImageFormat::Png), Format::Png);
    assert_close("16-bit PNG", &tensor, 1.0, 0.1);
}

#[test]
fn jpeg_gives_the_same_tensor_within_its_loss() {
    let tensor = tensor_of(&jpeg(&picture(), 95), Format::Jpeg);
    assert_close("JPEG", &tensor, 24.0, 2.0);
}

#[test]
fn progressive_jpeg_gives_the_same_tensor_within_its_loss() {
    let picture = picture();
    let mut bytes = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 95);
    encoder.set_progressive(true);
    encoder.encode(picture.as_raw(), 300, 200, jpeg_encoder::ColorType::Rgb).unwrap();
    assert!(bytes.windows(2).any(|m| m == [0xFF, 0xC2]), "the encoder wrote a baseline JPEG");
    let tensor = tensor_of(&bytes, Format::Jpeg);
    assert_close("progressive JPEG", &tensor, 24.0, 2.0);
}

/// Puts an EXIF APP1 segment holding only an orientation tag after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec(); // big-endian, first IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // padding, no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_six_is_turned_upright() {
    // A camera held upright stores the picture turned a quarter to the left and
    // tags it 6 ("rotate 90 degrees clockwise to view").
    let stored = image::imageops::rotate270(&picture());
    assert_eq!(stored.dimensions(), (200, 300));
    let bytes = with_exif_orientation(&jpeg(&stored, 95), 6);
    let tensor = tensor_of(&bytes, Format::Jpeg);
    assert_close("JPEG with EXIF orientation 6", &tensor, 24.0, 2.0);

    // Without the tag the same bytes are plainly different.
    let untagged = tensor_of(&jpeg(&stored, 95), Format::Jpeg);
    let (_, mean) = difference(&untagged, &original_arithmetic(&picture()));
    assert!(mean > 10.0, "ignoring orientation should change the tensor (mean diff {mean})");
}

#[test]
fn transparency_is_flattened_onto_white() {
    // Transparent pixels hide a loud red; half-transparent ones show half of it.
    let picture = picture();
    let mut rgba = RgbaImage::new(300, 200);
    let mut expected = picture.clone();
    for (x, y, pixel) in rgba.enumerate_pixels_mut() {
        let [r, g, b] = picture.get_pixel(x, y).0;
        *pixel = match x / 100 {
            0 => image::Rgba([255, 0, 0, 0]),
            1 => image::Rgba([r, g, b, 128]),
            _ => image::Rgba([r, g, b, 255]),
        };
        let alpha = u32::from(pixel[3]);
        let blend = |c: u8| ((u32::from(c) * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        expected.put_pixel(x, y, image::Rgb([blend(pixel[0]), blend(pixel[1]), blend(pixel[2])]));
    }
    let bytes = encode(&DynamicImage::ImageRgba8(rgba), image::ImageFormat::Png);
    let tensor = tensor_of(&bytes, Format::Png);
    let (max, mean) = difference(&tensor, &original_arithmetic(&expected));
    assert!(max <= 1.0 && mean <= 0.1, "RGBA PNG differs by up to {max} (mean {mean})");
}

#[test]
fn grayscale_and_cmyk_jpegs_become_rgb() {
    // Greyscale: every channel carries the same grey.
    let grey = image::GrayImage::from_pixel(64, 48, image::Luma([90]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 100)
        .write_image(grey.as_raw(), 64, 48, image::ExtendedColorType::L8)
        .unwrap();
    let decoded = decode(&bytes, DecodeLimits::default(), 0).unwrap();
    let pixel = decoded.image.get_pixel(10, 10).0;
    assert!(pixel.iter().all(|c| c.abs_diff(90) <= 1), "grey JPEG pixel {pixel:?}");

    // CMYK, as print workflows save it: pure cyan ink is RGB (0, 255, 255);
    // cyan with 50% black is about (0, 128, 128).
    for (cmyk, rgb) in [([255, 0, 0, 0], [0, 255, 255]), ([255, 0, 0, 128], [0, 127, 127])] {
        let pixels: Vec<u8> = (0..64 * 48).flat_map(|_| cmyk).collect();
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 100)
            .encode(&pixels, 64, 48, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        let decoded = decode(&bytes, DecodeLimits::default(), 0).unwrap();
        let got = decoded.image.get_pixel(10, 10).0;
        let close = got.iter().zip(rgb).all(|(g, e)| g.abs_diff(e) <= 3);
        assert!(close, "CMYK {cmyk:?} decoded to {got:?}, expected about {rgb:?}");
    }
}

#[test]
fn gif_takes_the_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let first = DynamicImage::ImageRgb8(picture()).into_rgba8();
    let second = RgbaImage::from_pixel(300, 200, image::Rgba([0, 0, 0, 255]));
    let mut bytes = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut bytes);
        for frame in [first, second] {
            encoder
                .encode_frame(Frame::from_parts(frame, 0, 0, Delay::from_numer_denom_ms(100, 1)))
                .unwrap();
        }
    }
    let tensor = tensor_of(&bytes, Format::Gif);
    assert_close("animated GIF", &tensor, 1.0, 0.1);
}

#[test]
fn big_jpegs_are_decoded_at_a_reduced_scale() {
    // A 12-megapixel photo only needs its shorter side above 224: the DCT
    // scaling decodes it at an eighth, 500x375.
    let big =
        image::imageops::resize(&picture(), 4000, 3000, image::imageops::FilterType::Triangle);
    let bytes = jpeg(&big, 90);
    let decoded = decode(&bytes, DecodeLimits::default(), 224).unwrap();
    assert_eq!(decoded.declared, (4000, 3000));
    assert_eq!(decoded.reduced_by, 8);
    assert_eq!(decoded.image.dimensions(), (500, 375));
    // Asking for full size (0) does not reduce.
    let full = decode(&bytes, DecodeLimits::default(), 0).unwrap();
    assert_eq!((full.reduced_by, full.image.dimensions()), (1, (4000, 3000)));
    // A shorter side of 256 still allows an eighth (375); 400 allows a quarter (750).
    assert_eq!(decode(&bytes, DecodeLimits::default(), 400).unwrap().reduced_by, 4);
}
