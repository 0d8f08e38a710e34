//! The network's input, made exactly as its manifest says: resize so that the
//! shorter side has the manifest's length, take the centre square, reorder the
//! channels, then scale, subtract the mean and divide by the deviation.
//! Decoding is left to `decode`, running the network to `model`.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GenericImageView, RgbImage};
use ndarray::Array4;

use crate::manifest::{Channels, Manifest};

/// The preprocessing steps of one model.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    input_size: u32,
    resize_shorter_to: u32,
    channels: Channels,
    scale: f32,
    mean: [f32; 3],
    std: [f32; 3],
}

impl Preprocessor {
    /// Takes the steps from a manifest.
    pub fn new(manifest: &Manifest) -> Preprocessor {
        Preprocessor {
            input_size: manifest.input_size,
            resize_shorter_to: manifest.resize_shorter_to,
            channels: manifest.channels,
            scale: manifest.scale,
            mean: manifest.mean,
            std: manifest.std,
        }
    }

    /// Side of the square the network takes.
    pub fn input_size(&self) -> u32 {
        self.input_size
    }

    /// Length the shorter side is resized to before cropping.
    pub fn resize_shorter_to(&self) -> u32 {
        self.resize_shorter_to
    }

    /// Size of the picture once its shorter side is `resize_shorter_to`.
    ///
    /// The longer side is truncated, not rounded, as Pillow and torchvision
    /// scripts compute it (`int(long * 256 / short)`); the reference results
    /// the tests compare against were made that way. Of a picture more than
    /// `MAX_ASPECT` times longer one way than the other, only the middle is
    /// resized (see `kept_part`).
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        let (_, _, width, height) = kept_part(width, height);
        let shorter = width.min(height);
        let scale = |side: f64| {
            let scaled = (side * f64::from(self.resize_shorter_to) / shorter).floor();
            u32::try_from(scaled as u64).unwrap_or(u32::MAX)
        };
        (scale(width), scale(height))
    }

    /// Resizes the picture (all but the ends of a long strip) bilinearly so
    /// that its shorter side is `resize_shorter_to`.
    ///
    /// Resizing only the centre square straight from the source would be a
    /// little cheaper, but it changes the pixels near the crop's edges enough
    /// to move probabilities by several points.
    pub fn resize(&self, resizer: &mut Resizer, image: &RgbImage) -> RgbImage {
        let (width, height) = image.dimensions();
        let (target_width, target_height) = self.resized_size(width, height);
        let source = ImageRef::new(width, height, image.as_raw(), PixelType::U8x3)
            .expect("an RgbImage holds three bytes a pixel");
        let mut target = Image::new(target_width, target_height, PixelType::U8x3);
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        let (left, top, kept_width, kept_height) = kept_part(width, height);
        if (kept_width, kept_height) != (f64::from(width), f64::from(height)) {
            options = options.crop(left, top, kept_width, kept_height);
        }
        resizer.resize(&source, &mut target, &options).expect("source and target are both RGB8");
        RgbImage::from_raw(target_width, target_height, target.into_vec())
            .expect("the target holds its width times height RGB pixels")
    }

    /// Takes the centre square of a resized picture (offsets rounded down)
    /// and turns it into the `[1, 3, size, size]` input tensor.
    pub fn to_tensor(&self, resized: &RgbImage) -> Array4<f32> {
        let size = self.input_size;
        let (width, height) = resized.dimensions();
        assert!(width >= size && height >= size, "{width}x{height} is smaller than the crop");
        let (left, top) = ((width - size) / 2, (height - size) / 2);
        let square = image::imageops::crop_imm(resized, left, top, size, size);
        let size = size as usize;
        let source_channel = |c: usize| match self.channels {
            Channels::Rgb => c,
            Channels::Bgr => 2 - c,
        };
        let mut tensor = Array4::<f32>::zeros((1, 3, size, size));
        for (x, y, pixel) in square.pixels() {
            for c in 0..3 {
                let value = f32::from(pixel[source_channel(c)]) * self.scale;
                tensor[[0, c, y as usize, x as usize]] = (value - self.mean[c]) / self.std[c];
            }
        }
        tensor
    }
}

/// How many times longer than wide (or wide than long) a picture may be
/// before only its middle is resized.
///
/// A strip of 100000×1 pixels would otherwise become 25600000×256 pixels
/// (nearly 20 GB) on its way to a 224-pixel square. Cutting it to four times
/// its short side first changes nothing the network sees: at four to one,
/// the centre square is 400 resized pixels from either cut, far beyond the
/// reach of the bilinear filter.
const MAX_ASPECT: f64 = 4.0;

/// The part of a `width`×`height` picture that is resized, as
/// `(left, top, width, height)`: the whole picture, or its middle when it is
/// more than `MAX_ASPECT` times longer one way than the other.
fn kept_part(width: u32, height: u32) -> (f64, f64, f64, f64) {
    let (width, height) = (f64::from(width), f64::from(height));
    let longest = width.min(height) * MAX_ASPECT;
    let (kept_width, kept_height) = (width.min(longest), height.min(longest));
    ((width - kept_width) / 2.0, (height - kept_height) / 2.0, kept_width, kept_height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::OutputKind;

    fn preprocessor(input_size: u32, resize_shorter_to: u32, channels: Channels) -> Preprocessor {
        Preprocessor::new(&Manifest {
            name: "t".into(),
            title: "t".into(),
            onnx: "t.onnx".into(),
            labels: "t.txt".into(),
            input_size,
            resize_shorter_to,
            channels,
            scale: 1.0,
            mean: [10.0, 20.0, 30.0],
            std: [1.0, 2.0, 4.0],
            output: OutputKind::Logits,
            input_name: None,
            output_name: None,
            fetch_hint: None,
        })
    }

    #[test]
    fn the_shorter_side_is_resized_and_the_longer_truncated() {
        let p = preprocessor(224, 256, Channels::Rgb);
        assert_eq!(p.resized_size(512, 1024), (256, 512));
        assert_eq!(p.resized_size(773, 512), (386, 256)); // 386.5, truncated
        assert_eq!(p.resized_size(100, 100), (256, 256));
        assert_eq!(p.resized_size(4032, 3024), (341, 256));
        assert_eq!(p.resized_size(1024, 256), (1024, 256));
    }

    #[test]
    fn only_the_middle_of_a_long_strip_is_resized() {
        let p = preprocessor(224, 256, Channels::Rgb);
        assert_eq!(p.resized_size(100_000, 1), (1024, 256));
        assert_eq!(p.resized_size(3, 60_000), (256, 1024));
        assert_eq!(p.resized_size(1025, 256), (1024, 256));

        // A strip whose middle is red and whose ends are blue: the square the
        // network gets is all red, as it would be without the cut.
        let mut strip = RgbImage::from_pixel(9_000, 2, image::Rgb([0, 0, 255]));
        for x in 4_496..4_504 {
            for y in 0..2 {
                strip.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        let resized = p.resize(&mut Resizer::new(), &strip);
        assert_eq!(resized.dimensions(), (1024, 256));
        let tensor = p.to_tensor(&resized);
        let red = (255.0 - 10.0) / 1.0;
        assert!(tensor.slice(ndarray::s![0, 0, .., 112]).iter().all(|&v| v == red));
    }

    #[test]
    fn the_tensor_is_the_centre_square() {
        let p = preprocessor(2, 2, Channels::Rgb);
        // 5x3: the square starts at x = (5 - 2) / 2 = 1, y = (3 - 2) / 2 = 0.
        let mut resized = RgbImage::new(5, 3);
        resized.put_pixel(1, 0, image::Rgb([110, 20, 30]));
        resized.put_pixel(2, 1, image::Rgb([10, 120, 30]));
        let tensor = p.to_tensor(&resized);
        assert_eq!(tensor[[0, 0, 0, 0]], 100.0);
        assert_eq!(tensor[[0, 1, 1, 1]], 50.0);
        assert_eq!(tensor[[0, 0, 1, 1]], 0.0);
    }

    #[test]
    fn tensor_reorders_channels_and_normalises() {
        let mut square = RgbImage::new(2, 2);
        square.put_pixel(1, 0, image::Rgb([100, 60, 230]));
        let rgb = preprocessor(2, 2, Channels::Rgb).to_tensor(&square);
        assert_eq!(rgb[[0, 0, 0, 1]], (100.0 - 10.0) / 1.0);
        assert_eq!(rgb[[0, 1, 0, 1]], (60.0 - 20.0) / 2.0);
        assert_eq!(rgb[[0, 2, 0, 1]], (230.0 - 30.0) / 4.0);
        let bgr = preprocessor(2, 2, Channels::Bgr).to_tensor(&square);
        assert_eq!(bgr[[0, 0, 0, 1]], (230.0 - 10.0) / 1.0);
        assert_eq!(bgr[[0, 2, 0, 1]], (100.0 - 30.0) / 4.0);
        assert_eq!(bgr[[0, 1, 1, 0]], (0.0 - 20.0) / 2.0);
    }
}
