//! Turning uploaded bytes into an upright RGB picture: the format is read from
//! the bytes (never the name), oversized and cut-off files are refused before
//! they cost memory, EXIF orientation is applied and transparency is flattened
//! onto white. Resizing for the network is left to `preprocess`.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::libjpeg;

/// Image formats we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    WebP,
    Bmp,
}

impl Format {
    /// Reads the format from the file's first bytes.
    pub fn sniff(bytes: &[u8]) -> Result<Format, ImageError> {
        if bytes.is_empty() {
            return Err(ImageError::Empty);
        }
        match image::guess_format(bytes) {
            Ok(image::ImageFormat::Jpeg) => Ok(Format::Jpeg),
            Ok(image::ImageFormat::Png) => Ok(Format::Png),
            Ok(image::ImageFormat::Gif) => Ok(Format::Gif),
            Ok(image::ImageFormat::WebP) => Ok(Format::WebP),
            Ok(image::ImageFormat::Bmp) => Ok(Format::Bmp),
            Ok(other) => Err(ImageError::UnsupportedFormat(format!("{other:?}").to_uppercase())),
            Err(_) if is_heif(bytes) => Err(ImageError::UnsupportedFormat("HEIC".into())),
            Err(_) => Err(ImageError::NotAnImage),
        }
    }

    /// The file name extension we store this format under.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::WebP => "webp",
            Format::Bmp => "bmp",
        }
    }

    /// The format's media type, for `Content-Type`.
    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::WebP => "image/webp",
            Format::Bmp => "image/bmp",
        }
    }

    /// The format whose extension this is, if we take it.
    pub fn from_extension(extension: &str) -> Option<Format> {
        match extension.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(Format::Jpeg),
            "png" => Some(Format::Png),
            "gif" => Some(Format::Gif),
            "webp" => Some(Format::WebP),
            "bmp" => Some(Format::Bmp),
            _ => None,
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::WebP => image::ImageFormat::WebP,
            Format::Bmp => image::ImageFormat::Bmp,
        }
    }
}

/// Whether the bytes are HEIC (HEIF), the format iPhones take photos in: an
/// ISO media file whose major brand is one of HEIF's. `image` does not know
/// it, and students should hear "convert it", not "not an image".
fn is_heif(bytes: &[u8]) -> bool {
    const BRANDS: [&[u8]; 8] =
        [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"];
    bytes.get(4..8) == Some(b"ftyp".as_slice())
        && bytes.get(8..12).is_some_and(|brand| BRANDS.contains(&brand))
}

/// Why an upload cannot be used as a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The file has no bytes at all.
    #[error("the file is empty")]
    Empty,
    /// The bytes are not an image format we know.
    #[error("the file is not an image (JPEG, PNG, GIF, WebP or BMP)")]
    NotAnImage,
    /// A real image, in a format we do not take.
    #[error("{0} images are not taken: use JPEG, PNG, GIF, WebP or BMP")]
    UnsupportedFormat(String),
    /// The declared size would need too much memory to decode.
    #[error(
        "the image is {width}x{height} pixels, more than the {max_megapixels} megapixels \
         we decode"
    )]
    TooLarge { width: u32, height: u32, max_megapixels: u64 },
    /// The declared size is within the limit, but decoding needs more memory
    /// than that size allows for (a frame or palette larger than the picture).
    #[error(
        "the image needs more memory to decode than its declared size allows (a frame larger \
         than the picture?); at most {max_megapixels} megapixels are decoded"
    )]
    NeedsTooMuchMemory { max_megapixels: u64 },
    /// The file ends before the image does.
    #[error("the image is cut off before its end (was the upload or copy complete?)")]
    Truncated,
    /// The decoder found the data broken.
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
}

/// How much we are willing to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// The most pixels (width times height) an image may declare.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 80 megapixels: above any phone camera's normal output (12 to 50 MP)
    /// while keeping one decode within a few hundred megabytes.
    fn default() -> DecodeLimits {
        DecodeLimits { max_pixels: 80_000_000 }
    }
}

/// An upright RGB picture, and where it came from.
#[derive(Debug)]
pub struct Decoded {
    pub image: RgbImage,
    pub format: Format,
    /// Width and height the file declares, before orientation and scaling.
    pub declared: (u32, u32),
    /// The JPEG DCT scaling denominator used while decoding (1 when none).
    pub reduced_by: u32,
}

/// Decodes `bytes` into an upright RGB picture.
///
/// `min_shorter_side` lets a JPEG be decoded at a reduced scale (1/2, 1/4 or
/// 1/8, done inside the inverse DCT at almost no cost) as long as its shorter
/// side stays at least this long; 0 always decodes at full size.
pub fn decode(
    bytes: &[u8],
    limits: DecodeLimits,
    min_shorter_side: u32,
) -> Result<Decoded, ImageError> {
    let format = Format::sniff(bytes)?;
    match format {
        Format::Jpeg => decode_jpeg(bytes, limits, min_shorter_side),
        _ => decode_other(bytes, format, limits),
    }
}

fn check_size(width: u32, height: u32, limits: DecodeLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt(format!("it declares a size of {width}x{height}")));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            max_megapixels: limits.max_pixels / 1_000_000,
        });
    }
    Ok(())
}

fn decode_jpeg(
    bytes: &[u8],
    limits: DecodeLimits,
    min_shorter_side: u32,
) -> Result<Decoded, ImageError> {
    // A JPEG cut off in its scan data would decode with grey rows at the
    // bottom, and the missing end marker says so before any work. Damaged
    // data can make the walk over the markers lose its way, so a file that
    // does end with the marker goes on to the decoder, which judges it.
    if !jpeg_is_complete(bytes) && !bytes.ends_with(&[0xFF, 0xD9]) {
        return Err(ImageError::Truncated);
    }

    // libjpeg stops by unwinding out of the C library (without calling the
    // panic hook, so nothing is printed); the unwind ends here.
    let read = std::panic::catch_unwind(|| read_jpeg(bytes, limits, min_shorter_side));
    let jpeg = read.unwrap_or_else(|payload| match payload.downcast::<libjpeg::Stop>() {
        Ok(stop) => match *stop {
            libjpeg::Stop::CutOff => Err(ImageError::Truncated),
            libjpeg::Stop::Broken(reason) => Err(ImageError::Corrupt(reason)),
        },
        // A panic of our own code is a bug, not a bad file: let it go on.
        Err(payload) => std::panic::resume_unwind(payload),
    })?;

    let mut image = DynamicImage::ImageRgb8(jpeg.image);
    if let Some(orientation) = jpeg.orientation {
        image.apply_orientation(orientation);
    }
    Ok(Decoded {
        image: image.into_rgb8(),
        format: Format::Jpeg,
        declared: jpeg.declared,
        reduced_by: jpeg.reduced_by,
    })
}

/// A JPEG's pixels as stored, before its EXIF orientation is applied.
struct JpegPixels {
    image: RgbImage,
    declared: (u32, u32),
    reduced_by: u32,
    orientation: Option<Orientation>,
}

fn read_jpeg(
    bytes: &[u8],
    limits: DecodeLimits,
    min_shorter_side: u32,
) -> Result<JpegPixels, ImageError> {
    use mozjpeg::{ColorSpace, Marker};

    let corrupt = |e: std::io::Error| ImageError::Corrupt(e.to_string());
    let mut jpeg = mozjpeg::Decompress::with_markers(&[Marker::APP(1), Marker::APP(14)])
        .with_err(libjpeg::strict_errors())
        .from_mem(bytes)
        .map_err(corrupt)?;
    // JPEG sides are 16-bit numbers, so they always fit.
    let (width, height) = (jpeg.width() as u32, jpeg.height() as u32);
    check_size(width, height, limits)?;

    let eighths = eighths_to_keep(width.min(height), min_shorter_side);
    jpeg.scale(eighths);
    let orientation = jpeg.markers().find_map(|m| exif_orientation(m.marker, m.data));
    let adobe = jpeg.markers().any(|m| m.marker == Marker::APP(14) && m.data.starts_with(b"Adobe"));
    let cmyk = matches!(jpeg.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);

    let colours = if cmyk { ColorSpace::JCS_CMYK } else { ColorSpace::JCS_RGB };
    let mut started = jpeg.to_colorspace(colours).map_err(corrupt)?;
    let (out_width, out_height) = (started.width() as u32, started.height() as u32);
    let pixels: Vec<u8> = started.read_scanlines().map_err(corrupt)?;
    started.finish().map_err(corrupt)?;

    let rgb = if cmyk { cmyk_to_rgb(&pixels, adobe) } else { pixels };
    let image = RgbImage::from_raw(out_width, out_height, rgb)
        .ok_or_else(|| ImageError::Corrupt("fewer pixels than the header declares".into()))?;
    Ok(JpegPixels {
        image,
        declared: (width, height),
        reduced_by: 8 / u32::from(eighths),
        orientation,
    })
}

/// The fewest eighths (8, 4, 2 or 1) of each side to decode so that the
/// shorter side keeps at least `min_shorter_side` pixels; 0 keeps them all.
///
/// At one eighth libjpeg works out only each block's average: a 12-megapixel
/// photo took 33 ms against 45 ms at a quarter (README.md, Performance).
fn eighths_to_keep(shorter: u32, min_shorter_side: u32) -> u8 {
    if min_shorter_side == 0 {
        return 8;
    }
    // libjpeg rounds a scaled side up.
    let scaled = |eighths: u32| (shorter * eighths).div_ceil(8);
    [1, 2, 4].into_iter().find(|&e| scaled(u32::from(e)) >= min_shorter_side).unwrap_or(8)
}

/// The orientation an APP1 segment holds, if it is EXIF and has one.
fn exif_orientation(marker: mozjpeg::Marker, data: &[u8]) -> Option<Orientation> {
    let exif = data.strip_prefix(b"Exif\0\0").filter(|_| marker == mozjpeg::Marker::APP(1))?;
    Orientation::from_exif_chunk(exif)
}

/// Turns CMYK (or YCCK, which libjpeg turns into CMYK) into RGB.
///
/// Adobe's applications, which write almost every CMYK JPEG, store the inks
/// inverted and say so with their APP14 segment; libjpeg leaves them as
/// stored. The naive conversion is what browsers show for CMYK files without
/// a colour profile.
fn cmyk_to_rgb(pixels: &[u8], adobe: bool) -> Vec<u8> {
    let paper = |ink: u8| if adobe { u16::from(ink) } else { 255 - u16::from(ink) };
    pixels
        .chunks_exact(4)
        .flat_map(|p| {
            let k = paper(p[3]);
            let channel = |c: u8| (paper(c) * k / 255) as u8;
            [channel(p[0]), channel(p[1]), channel(p[2])]
        })
        .collect()
}

/// Whether a JPEG's markers run all the way to its end-of-image marker.
///
/// Walks the marker segments from the start of image and skips each scan's
/// entropy-coded data, where a 0xFF byte is always followed by a stuffed zero
/// or a restart marker. An embedded EXIF thumbnail has its own end marker, but
/// it sits inside an APP1 segment, which is skipped whole.
pub fn jpeg_is_complete(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut at = 2;
    loop {
        // Find the next marker, tolerating stray bytes and fill bytes before it.
        while at < bytes.len() && bytes[at] != 0xFF {
            at += 1;
        }
        while at < bytes.len() && bytes[at] == 0xFF {
            at += 1;
        }
        let Some(&marker) = bytes.get(at) else {
            return false;
        };
        at += 1;

        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let Some(length) = bytes.get(at..at + 2) else {
            return false;
        };
        at += usize::from(u16::from_be_bytes([length[0], length[1]]));
        if at > bytes.len() {
            return false;
        }
        if marker == 0xDA {
            at = skip_entropy_coded_data(bytes, at);
        }
    }
}

/// Returns the position of the first real marker after scan data at `from`.
fn skip_entropy_coded_data(bytes: &[u8], mut from: usize) -> usize {
    while let Some(offset) = bytes[from..].iter().position(|&b| b == 0xFF) {
        let at = from + offset;
        match bytes.get(at + 1) {
            Some(0x00) | Some(0xD0..=0xD7) => from = at + 2,
            Some(0xFF) => from = at + 1,
            _ => return at,
        }
    }
    bytes.len()
}

fn decode_other(bytes: &[u8], format: Format, limits: DecodeLimits) -> Result<Decoded, ImageError> {
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => {
            ImageError::NeedsTooMuchMemory { max_megapixels: limits.max_pixels / 1_000_000 }
        }
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageError::Truncated
        }
        other if is_eof_message(&other.to_string()) => ImageError::Truncated,
        _ if riff_is_cut_off(bytes, format) => ImageError::Truncated,
        other => ImageError::Corrupt(other.to_string()),
    };

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut image_limits = image::Limits::default();
    // A backstop for what the declared size does not show (a frame or a
    // palette larger than the picture); the declared size is checked below.
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;

    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image: flatten_onto_white(image),
        format,
        declared: (width, height),
        reduced_by: 1,
    })
}

/// Whether a WebP file is shorter than its RIFF header says: the WebP
/// decoder reports the missing end as a corrupt bitstream.
fn riff_is_cut_off(bytes: &[u8], format: Format) -> bool {
    let Some(size) = bytes.get(4..8) else { return false };
    let declared = u32::from_le_bytes(size.try_into().expect("four bytes"));
    format == Format::WebP && (bytes.len() as u64) < u64::from(declared) + 8
}

fn is_eof_message(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("unexpected end") || message.contains("eof") || message.contains("truncated")
}

/// Drops the alpha channel by compositing onto a white background, as a
/// browser shows a transparent picture on a white page.
fn flatten_onto_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let pixels = rgba
        .pixels()
        .flat_map(|p| {
            let alpha = u32::from(p[3]);
            let over_white =
                |c: u8| ((u32::from(c) * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
            [over_white(p[0]), over_white(p[1]), over_white(p[2])]
        })
        .collect();
    RgbImage::from_raw(width, height, pixels).expect("three bytes for each RGBA pixel")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_bytes() {
        assert_eq!(Format::sniff(b""), Err(ImageError::Empty));
        assert_eq!(Format::sniff(b"hello, this is text"), Err(ImageError::NotAnImage));
        assert_eq!(Format::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Ok(Format::Jpeg));
        assert_eq!(Format::sniff(b"\x89PNG\r\n\x1a\n...."), Ok(Format::Png));
        assert_eq!(Format::sniff(b"GIF89a......"), Ok(Format::Gif));
        assert_eq!(Format::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(Format::WebP));
        assert_eq!(Format::sniff(b"BM......"), Ok(Format::Bmp));
        assert!(matches!(Format::sniff(b"II*\0......"), Err(ImageError::UnsupportedFormat(_))));
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(Format::sniff(heic), Err(ImageError::UnsupportedFormat("HEIC".into())));
        assert_eq!(Format::sniff(b"\0\0\0\x18ftypisom...."), Err(ImageError::NotAnImage));
    }

    #[test]
    fn extensions_map_to_formats() {
        assert_eq!(Format::from_extension("JPEG"), Some(Format::Jpeg));
        assert_eq!(Format::from_extension("webp"), Some(Format::WebP));
        assert_eq!(Format::from_extension("tiff"), None);
    }

    #[test]
    fn jpeg_completeness_follows_the_markers() {
        let mut jpeg = vec![0xFF, 0xD8];
        // An APP1 segment that holds a thumbnail's own end marker.
        jpeg.extend_from_slice(&[0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00]);
        // A scan header, then entropy data with a stuffed 0xFF and a restart marker.
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0]);
        let cut = jpeg.clone();
        jpeg.extend_from_slice(&[0x56, 0xFF, 0xD9]);

        assert!(jpeg_is_complete(&jpeg));
        assert!(!jpeg_is_complete(&cut));
        assert!(!jpeg_is_complete(&jpeg[..6]));
        assert!(!jpeg_is_complete(b"not a jpeg"));
    }

    #[test]
    fn jpegs_shrink_as_far_as_the_shorter_side_allows() {
        // 3000 pixels: 375 at 1/8, 750 at 1/4, 1500 at 1/2.
        assert_eq!(eighths_to_keep(3000, 336), 1);
        assert_eq!(eighths_to_keep(3000, 375), 1);
        assert_eq!(eighths_to_keep(3000, 384), 2);
        assert_eq!(eighths_to_keep(3000, 1000), 4);
        assert_eq!(eighths_to_keep(3000, 2000), 8);
        // 1001 pixels at 1/8 are rounded up to 126.
        assert_eq!(eighths_to_keep(1001, 126), 1);
        assert_eq!(eighths_to_keep(512, 336), 8);
        assert_eq!(eighths_to_keep(3000, 0), 8);
    }

    #[test]
    fn adobe_cmyk_is_stored_inverted() {
        // Pure cyan ink, no black: stored as 255 - ink by Adobe, as ink otherwise.
        assert_eq!(cmyk_to_rgb(&[0, 255, 255, 255], true), [0, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 0, 0, 0], false), [0, 255, 255]);
    }

    #[test]
    fn transparency_is_flattened_onto_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([200, 100, 0, 255]));
        let rgb = flatten_onto_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [200, 100, 0]);
    }
}
