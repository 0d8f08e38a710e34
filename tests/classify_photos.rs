//! Real photographs through MobileNetV2: the top class and probabilities the
//! reference run (ONNX Runtime with Pillow, in shared/README.md) gives.

mod common;

/// (image, [(class index, reference probability); top 5], clear case?)
const REFERENCE: &[(&str, [(usize, f32); 5], bool)] = &[
    (
        "bull-mastiff.png",
        [(243, 0.970), (246, 0.014), (180, 0.006), (159, 0.005), (179, 0.002)],
        true,
    ),
    ("cat.jpg", [(282, 0.315), (281, 0.115), (285, 0.111), (278, 0.077), (277, 0.061)], true),
    ("cat_gray.jpg", [(285, 0.178), (278, 0.164), (277, 0.127), (333, 0.101), (280, 0.059)], false),
    ("eagle.jpg", [(22, 0.747), (21, 0.135), (23, 0.097), (139, 0.003), (80, 0.003)], true),
    ("fish-bike.jpg", [(870, 0.656), (612, 0.109), (697, 0.049), (444, 0.039), (431, 0.022)], true),
];

#[test]
fn shared_photos_get_the_reference_classes() {
    let classifier = common::classifier("mobilenetv2");
    let mut session = classifier.session().unwrap();
    for (image, reference, clear) in REFERENCE {
        let result = classifier.classify(&mut session, &common::photo(image), 1000).unwrap();
        let top: Vec<usize> = result.top.iter().map(|p| p.index).collect();
        let probability =
            |index: usize| result.top.iter().find(|p| p.index == index).unwrap().probability;
        let (expected_top1, _) = reference[0];
        if *clear {
            assert_eq!(top[0], expected_top1, "{image}: top-5 {:?}", &result.top[..5]);
            for (index, expected) in reference {
                let got = probability(*index);
                assert!(
                    (got - expected).abs() <= 0.05,
                    "{image}: class {index} has {got}, reference {expected}"
                );
            }
        } else {
            assert!(top[..2].contains(&expected_top1), "{image}: top-2 {:?}", &result.top[..2]);
        }
        assert_eq!(result.top.len(), 1000);
        assert_eq!(result.top[0].rank, 1);
    }
}

#[test]
fn labels_are_readable_names() {
    let classifier = common::classifier("mobilenetv2");
    let mut session = classifier.session().unwrap();
    let result = classifier.classify(&mut session, &common::photo("eagle.jpg"), 10).unwrap();
    assert_eq!(result.top.len(), 10);
    assert_eq!(result.top[0].label, "bald eagle");
    assert_eq!(result.top[0].names, "bald eagle, American eagle, Haliaeetus leucocephalus");
    let ranks: Vec<usize> = result.top.iter().map(|p| p.rank).collect();
    assert_eq!(ranks, (1..=10).collect::<Vec<_>>());
    assert!(result.top.windows(2).all(|w| w[0].probability >= w[1].probability));
    let sum: f32 = result.top.iter().map(|p| p.probability).sum();
    assert!(sum > 0.9 && sum <= 1.0001, "top-10 of eagle.jpg sum to {sum}");
}

#[test]
fn a_big_phone_photo_gets_the_same_class() {
    // The eagle upscaled to 12 megapixels decodes at a reduced scale and must
    // still be a bald eagle.
    let eagle = image::load_from_memory(&common::photo("eagle.jpg")).unwrap().into_rgb8();
    let big = image::imageops::resize(&eagle, 4032, 3024, image::imageops::FilterType::Triangle);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(&big).unwrap();
    let classifier = common::classifier("mobilenetv2");
    let result = classifier.classify(&mut classifier.session().unwrap(), &bytes, 5).unwrap();
    assert_eq!((result.width, result.height), (4032, 3024));
    assert_eq!(result.top[0].index, 22, "{:?}", result.top);
}

fn png(image: &image::RgbImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

#[test]
fn a_long_strip_is_classified_by_its_middle() {
    // The eagle in the middle of a black strip seven times longer than high:
    // only the strip's middle is resized, and it holds the same square the
    // eagle alone gives the network.
    let eagle = image::load_from_memory(&common::photo("eagle.jpg")).unwrap().into_rgb8();
    let (width, height) = eagle.dimensions();
    let mut strip = image::RgbImage::new(height * 7, height);
    image::imageops::replace(&mut strip, &eagle, i64::from((height * 7 - width) / 2), 0);
    let classifier = common::classifier("mobilenetv2");
    let mut session = classifier.session().unwrap();
    let result = classifier.classify(&mut session, &png(&strip), 5).unwrap();
    assert_eq!(result.top[0].index, 22, "{:?}", result.top);
    assert!(result.top[0].probability > 0.6, "{:?}", result.top);

    // Resized whole, a strip of 100000×1 pixels would need some 20 GB.
    let thread = image::RgbImage::from_pixel(100_000, 1, image::Rgb([200, 30, 30]));
    let result = classifier.classify(&mut session, &png(&thread), 5).unwrap();
    assert_eq!((result.width, result.height), (100_000, 1));
    assert_eq!(result.top.len(), 5);
}
