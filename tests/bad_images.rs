//! Files that are not usable pictures get a clear error, never a panic.

mod common;

use imagenet_classroom::decode::{decode, DecodeLimits, ImageError};
use imagenet_classroom::model::ClassifyError;

fn error_of(bytes: &[u8]) -> ImageError {
    match decode(bytes, DecodeLimits::default(), 224) {
        Ok(decoded) => {
            panic!("decoded {}x{} from bad input", decoded.image.width(), decoded.image.height())
        }
        Err(err) => err,
    }
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    chunk.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    chunk
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn empty_and_text_files_are_not_images() {
    assert_eq!(error_of(b""), ImageError::Empty);
    assert_eq!(error_of(b"<html>this is not a photo</html>\n"), ImageError::NotAnImage);
    assert_eq!(error_of(&[0u8; 1000]), ImageError::NotAnImage);
}

#[test]
fn formats_we_do_not_take_are_named() {
    let tiff = b"II*\0\x08\0\0\0\0\0";
    match error_of(tiff) {
        ImageError::UnsupportedFormat(name) => assert_eq!(name, "TIFF"),
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

#[test]
fn cut_off_jpegs_are_refused() {
    let eagle = common::photo("eagle.jpg");
    for keep in [eagle.len() * 6 / 10, eagle.len() - 2, 200, 3] {
        assert_eq!(error_of(&eagle[..keep]), ImageError::Truncated, "eagle.jpg cut at {keep}");
    }
    // The whole file is fine.
    assert!(decode(&eagle, DecodeLimits::default(), 224).is_ok());
}

#[test]
fn a_jpeg_with_a_broken_table_is_refused_with_the_decoders_reason() {
    // Zeroes over the first Huffman table: libjpeg gives up, and its reason
    // comes back as an error rather than a crash of the worker.
    let mut eagle = common::photo("eagle.jpg");
    let table = eagle.windows(2).position(|m| m == [0xFF, 0xC4]).expect("a Huffman table");
    eagle[table + 5..table + 40].fill(0);
    match error_of(&eagle) {
        ImageError::Corrupt(reason) => assert_eq!(reason, "Bogus marker length"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_jpeg_with_damaged_data_is_refused_though_it_ends_well() {
    // Scrambled bytes in the middle of the scan: libjpeg would decode on with
    // noise and a warning; the warning refuses it, and the file is not called
    // cut off, for its end is there.
    let mut cat = common::photo("cat.jpg");
    let middle = cat.len() / 2;
    cat[middle..middle + 2000].iter_mut().for_each(|b| *b = b.wrapping_mul(7).wrapping_add(13));
    match error_of(&cat) {
        ImageError::Corrupt(reason) => assert!(reason.starts_with("Corrupt JPEG data"), "{reason}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn cut_off_pngs_are_refused() {
    let mastiff = common::photo("bull-mastiff.png");
    for keep in [mastiff.len() / 2, mastiff.len() - 12, 40] {
        let err = error_of(&mastiff[..keep]);
        assert!(
            matches!(err, ImageError::Truncated | ImageError::Corrupt(_)),
            "bull-mastiff.png cut at {keep}: {err:?}"
        );
    }
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    // A PNG header declaring 100000 x 100000 pixels, with nothing behind it.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(png_chunk(b"IEND", &[]));
    assert_eq!(
        error_of(&png),
        ImageError::TooLarge { width: 100_000, height: 100_000, max_megapixels: 80 }
    );

    // A real 16 x 16 JPEG whose frame header is made to declare 60000 x 60000.
    let mut jpeg = Vec::new();
    let tiny = image::RgbImage::from_pixel(16, 16, image::Rgb([90, 120, 200]));
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&tiny).unwrap();
    let frame = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).expect("a baseline frame");
    jpeg[frame + 5..frame + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    assert!(matches!(error_of(&jpeg), ImageError::TooLarge { width: 60_000, .. }));

    // A GIF whose screen and frame declare 65535 x 65535.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00]);
    gif.extend_from_slice(&[
        0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 0x02, 0x4C, 0x01, 0x00, 0x3B,
    ]);
    assert!(matches!(error_of(&gif), ImageError::TooLarge { .. }), "{:?}", error_of(&gif));

    // A 10 x 10 GIF whose first frame declares 60000 x 60000: the size checked
    // before decoding passes, the decoder's memory limit stops it.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[10, 0, 10, 0, 0x80, 0x00, 0x00, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[
        0x2C, 0, 0, 0, 0, 0x60, 0xEA, 0x60, 0xEA, 0x00, 0x02, 0x02, 0x4C, 0x01, 0x00, 0x3B,
    ]);
    assert_eq!(error_of(&gif), ImageError::NeedsTooMuchMemory { max_megapixels: 80 });
}

#[test]
fn cut_off_webps_are_called_cut_off() {
    let eagle = image::load_from_memory(&common::photo("eagle.jpg")).unwrap();
    let mut webp = Vec::new();
    eagle.write_to(&mut std::io::Cursor::new(&mut webp), image::ImageFormat::WebP).unwrap();
    for keep in [webp.len() / 2, webp.len() - 10, 40] {
        assert_eq!(error_of(&webp[..keep]), ImageError::Truncated, "eagle.webp cut at {keep}");
    }
}

#[test]
fn the_limit_is_configurable() {
    let eagle = common::photo("eagle.jpg"); // 773 x 512
    let small = DecodeLimits { max_pixels: 300_000 };
    assert!(matches!(
        decode(&eagle, small, 224),
        Err(ImageError::TooLarge { width: 773, height: 512, .. })
    ));
}

#[test]
fn the_classifier_passes_image_errors_on() {
    let classifier = common::classifier("mobilenetv2");
    let mut session = classifier.session().unwrap();
    let err = classifier.classify(&mut session, b"GIF89a", 10).unwrap_err();
    assert!(matches!(err, ClassifyError::Image(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cannot be decoded") || message.contains("cut off"), "{message}");
}
