//! The classifier: a network loaded and optimised once, shared by every
//! thread, and the path from uploaded bytes to the ten likeliest classes.
//! Each thread keeps its own [`Session`] (tract state and resizer buffers) so
//! that nothing is allocated again per image.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use fast_image_resize::Resizer;
use serde::Serialize;
use tract_onnx::prelude::tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::decode::{self, DecodeLimits, Format, ImageError};
use crate::labels::Labels;
use crate::manifest::{Manifest, OutputKind};
use crate::preprocess::Preprocessor;
use crate::{depthwise, lrn, maxpool};

/// A loaded model, ready to classify from any thread.
pub struct Classifier {
    manifest: Manifest,
    labels: Labels,
    plan: Arc<TypedSimplePlan>,
    preprocessor: Preprocessor,
    limits: DecodeLimits,
}

/// What one thread needs to run the model again and again.
pub struct Session {
    state: TypedSimpleState,
    resizer: Resizer,
    /// The threads this session's inferences share (see [`set_threads`]).
    threads: Executor,
}

impl Session {
    /// Runs `f` on tract's execution state, on this session's own threads
    /// when inferences use several.
    ///
    /// Each session has its own pool: with one pool shared by several
    /// workers, a pool thread waiting inside one worker's inference took up a
    /// step of another's, and tract's per-thread scratch space (a `RefCell`)
    /// panicked as already borrowed. The inference itself runs on a pool
    /// thread, which then works on each step alongside the others instead of
    /// handing it over and sleeping: GoogLeNet with two threads took 17.0 ms
    /// instead of 18.7 (`imagenet-classroom bench --fixed-input --threads 2`,
    /// AMD EPYC Zen 5).
    pub fn on_threads<R: Send>(&mut self, f: impl FnOnce(&mut TypedSimpleState) -> R + Send) -> R {
        use tract_onnx::prelude::tract_linalg::multithread::multithread_tract_scope;
        let state = &mut self.state;
        match &self.threads {
            Executor::MultiThread(pool) => {
                pool.install(|| multithread_tract_scope(self.threads.clone(), || f(state)))
            }
            _ => f(state),
        }
    }
}

/// One of the likeliest classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub rank: usize,
    pub index: usize,
    /// The class's first name (`bald eagle`).
    pub label: String,
    /// All the class's names (`bald eagle, American eagle, Haliaeetus leucocephalus`).
    pub names: String,
    pub probability: f32,
}

/// Where the time of one classification went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub decode: Duration,
    pub preprocess: Duration,
    pub inference: Duration,
}

impl Timings {
    /// Decode, preprocessing and inference together.
    pub fn total(&self) -> Duration {
        self.decode + self.preprocess + self.inference
    }
}

/// The result of classifying one picture.
#[derive(Debug, Clone)]
pub struct Classification {
    pub top: Vec<Prediction>,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub timings: Timings,
}

/// Why a picture could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The upload is not a usable picture: the student's to fix.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The network failed to run: ours to fix.
    #[error("the model failed to run: {0:#}")]
    Inference(anyhow::Error),
}

impl Classifier {
    /// Loads, checks and optimises the model a manifest describes.
    pub fn load(manifest: Manifest, limits: DecodeLimits) -> anyhow::Result<Classifier> {
        if !manifest.onnx.is_file() {
            let hint = manifest.fetch_hint.as_deref().unwrap_or("check the `onnx` key");
            bail!("model file {} does not exist: {hint}", manifest.onnx.display());
        }
        let labels = Labels::load(&manifest.labels)?;
        let plan = load_plan(&manifest, labels.len(), 1)
            .with_context(|| format!("cannot load model {}", manifest.onnx.display()))?;
        let classifier = Classifier {
            preprocessor: Preprocessor::new(&manifest),
            manifest,
            labels,
            plan,
            limits,
        };
        classifier.check_output_kind()?;
        Ok(classifier)
    }

    /// The manifest the model was loaded from.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The model's class labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The preprocessing steps.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// The largest pictures this classifier decodes.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// A fresh per-thread session.
    pub fn session(&self) -> anyhow::Result<Session> {
        let threads = INFERENCE_THREADS.load(Ordering::Relaxed);
        let threads = if threads > 1 {
            Executor::multithread_with_name(threads, "inference")
        } else {
            Executor::SingleThread
        };
        Ok(Session { state: self.plan.spawn()?, resizer: Resizer::new(), threads })
    }

    /// Decodes, preprocesses and classifies one picture, keeping the `top` likeliest classes.
    pub fn classify(
        &self,
        session: &mut Session,
        bytes: &[u8],
        top: usize,
    ) -> Result<Classification, ClassifyError> {
        let start = Instant::now();
        // A big JPEG is decoded at 1/2, 1/4 or 1/8 scale inside its inverse
        // DCT, nearly free, as long as the bilinear resize after it still
        // shrinks by at least half as much again: the result then stays that
        // of a full decode within a few points of probability. Decoded to the
        // resized side itself, a 773×512 photo lost 6 points on one class.
        let min_side = self.preprocessor.resize_shorter_to().saturating_mul(3) / 2;
        let decoded = decode::decode(bytes, self.limits, min_side)?;
        let decoded_at = Instant::now();

        let resized = self.preprocessor.resize(&mut session.resizer, &decoded.image);
        let input = self.preprocessor.to_tensor(&resized);
        let preprocessed_at = Instant::now();

        let probabilities =
            self.probabilities(session, input.into()).map_err(ClassifyError::Inference)?;
        let done = Instant::now();

        let (width, height) = decoded.image.dimensions();
        log::debug!(
            "decoded format={:?} declared={}x{} reduced_by={} upright={width}x{height}",
            decoded.format,
            decoded.declared.0,
            decoded.declared.1,
            decoded.reduced_by
        );
        Ok(Classification {
            top: self.top(&probabilities, top),
            format: decoded.format,
            width: decoded.declared.0,
            height: decoded.declared.1,
            timings: Timings {
                decode: decoded_at - start,
                preprocess: preprocessed_at - decoded_at,
                inference: done - preprocessed_at,
            },
        })
    }

    /// Runs the network on a ready input tensor and returns class probabilities.
    pub fn probabilities(&self, session: &mut Session, input: Tensor) -> anyhow::Result<Vec<f32>> {
        let outputs = session.on_threads(|state| state.run(tvec!(input.into_tvalue())))?;
        let output = outputs[0].to_plain_array_view::<f32>()?;
        let scores: Vec<f32> = output.iter().copied().collect();
        ensure!(
            scores.len() == self.labels.len(),
            "the model gave {} scores for {} labels",
            scores.len(),
            self.labels.len()
        );
        Ok(match self.manifest.output {
            OutputKind::Probabilities => scores,
            OutputKind::Logits => softmax(&scores),
        })
    }

    /// The `k` likeliest classes, most likely first, ties going to the lower index.
    pub fn top(&self, probabilities: &[f32], k: usize) -> Vec<Prediction> {
        top_k(probabilities, k)
            .into_iter()
            .enumerate()
            .map(|(rank, index)| Prediction {
                rank: rank + 1,
                index,
                label: self.labels.short_name(index).to_string(),
                names: self.labels.name(index).to_string(),
                probability: probabilities[index],
            })
            .collect()
    }

    /// Runs the model once on a grey picture, which also warms it up, and
    /// refuses a manifest that calls logits probabilities.
    fn check_output_kind(&self) -> anyhow::Result<()> {
        let size = self.preprocessor.input_size() as usize;
        let input = Tensor::zero::<f32>(&[1, 3, size, size])?;
        let probabilities = self.probabilities(&mut self.session()?, input)?;
        ensure!(
            probabilities.iter().all(|p| p.is_finite()),
            "the model gives non-finite outputs on a blank picture"
        );
        let sum: f32 = probabilities.iter().sum();
        let all_positive = probabilities.iter().all(|p| *p >= 0.0);
        ensure!(
            all_positive && (sum - 1.0).abs() < 1e-2,
            "the model's outputs do not form a probability distribution (they sum to {sum}); \
             if the model gives logits, set `output = \"logits\"` in {}'s manifest",
            self.manifest.name
        );
        Ok(())
    }
}

/// Loads the ONNX file, fixes the input to `[batch, 3, size, size]`, checks
/// both ends against the manifest, and optimises. Classification uses batches
/// of one; the benchmark times larger ones to weigh batching concurrent
/// uploads against running them side by side.
pub fn load_plan(
    manifest: &Manifest,
    classes: usize,
    batch: usize,
) -> anyhow::Result<Arc<TypedSimplePlan>> {
    choose_kernels();
    let mut onnx = tract_onnx::onnx();
    lrn::register(&mut onnx);
    let mut model = onnx.model_for_path(&manifest.onnx)?;

    let input =
        pick_outlet(&model, &model.input_outlets()?.to_vec(), &manifest.input_name, "input")?;
    let size = manifest.input_size as usize;
    let expected = [batch, 3, size, size];
    let declared = model.input_fact(input)?.shape.clone();
    for (axis, dim) in declared.dims().enumerate() {
        let known = dim.concretize().and_then(|d| d.as_i64());
        if let (Some(dim), Some(want)) = (known, expected.get(axis)) {
            ensure!(
                dim == *want as i64 || axis == 0,
                "the model's input takes shape {declared:?}, but the manifest's input_size makes \
                 it {expected:?}: fix `input_size` or use a model with NCHW input"
            );
        }
    }
    model.set_input_fact(input, f32::fact(expected).into())?;
    let input_outlets = model.input_outlets()?.to_vec();
    let input_outlet = input_outlets[input];
    model.set_input_outlets(&[input_outlet])?;

    let output =
        pick_outlet(&model, &model.output_outlets()?.to_vec(), &manifest.output_name, "output")?;
    let output_outlet = model.output_outlets()?[output];
    model.select_output_outlets(&[output_outlet])?;

    let typed = model.into_typed().context("cannot infer the model's shapes")?;
    let output_fact = typed.output_fact(0)?;
    let volume = output_fact.shape.volume().to_usize().context("the output size is not fixed")?;
    ensure!(
        volume == classes * batch,
        "the model's output has shape {:?} ({volume} values), but the labels file has {classes} \
         classes",
        output_fact.shape
    );
    let mut typed = typed.into_decluttered()?;
    maxpool::replace_in(&mut typed)?;
    depthwise::replace_in(&mut typed)?;
    typed.optimize()?;
    Ok(typed.into_runnable()?)
}

/// Keeps tract off its AVX-512 matrix kernels on AMD's Zen 4 processors,
/// unless the administrator chose with `TRACT_CPU_ISA`.
///
/// Zen 4 runs each 512-bit instruction as two 256-bit halves, and there
/// tract's AVX-512 kernels lost to its AVX2 ones: GoogLeNet took 53 ms a
/// picture with them and 47 ms without (`scripts/bench-vs-onnxruntime`, one
/// thread). Zen 5 has full 512-bit units and gains from them: 31 ms against
/// 41 ms. tract reads the setting once, when it first picks a kernel, so this
/// runs before any model is loaded.
fn choose_kernels() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TRACT_CPU_ISA").is_none() && cpu_is_zen4() {
            tract_onnx::tract_core::knobs::set_str("TRACT_CPU_ISA", "-avx512f");
        }
    });
}

/// Whether this is an AMD processor of family 19h (Zen 3 and Zen 4; only
/// Zen 4 has AVX-512, so for choosing kernels the two need no telling apart).
#[cfg(target_arch = "x86_64")]
fn cpu_is_zen4() -> bool {
    use std::arch::x86_64::__cpuid;

    // Older compilers want `unsafe` around CPUID; newer ones call it redundant.
    #[allow(unused_unsafe)]
    let (vendor, signature) = unsafe { (__cpuid(0), __cpuid(1).eax) };
    let vendor = [vendor.ebx.to_le_bytes(), vendor.edx.to_le_bytes(), vendor.ecx.to_le_bytes()];
    vendor.concat() == b"AuthenticAMD" && cpu_family(signature) == 0x19
}

/// The processor family in a CPUID leaf 1 signature (EAX): the base family,
/// plus the extended family when the base one is 0xF.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn cpu_family(signature: u32) -> u32 {
    let base_family = (signature >> 8) & 0xf;
    let extended_family = (signature >> 20) & 0xff;
    if base_family == 0xf {
        base_family + extended_family
    } else {
        base_family
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_is_zen4() -> bool {
    false
}

/// Chooses which input or output to use: the one the manifest names, or the only one.
fn pick_outlet(
    model: &InferenceModel,
    outlets: &[OutletId],
    wanted: &Option<String>,
    what: &str,
) -> anyhow::Result<usize> {
    let names: Vec<&str> = outlets.iter().map(|o| model.node(o.node).name.as_str()).collect();
    match wanted {
        Some(name) => names.iter().position(|n| n == name).with_context(|| {
            format!("the model has no {what} named {name:?}; its {what}s are {names:?}")
        }),
        None if names.len() == 1 => Ok(0),
        None => bail!(
            "the model has {} {what}s ({names:?}): name one with `{what}_name` in the manifest",
            names.len()
        ),
    }
}

/// How many threads each inference of a session made from now on uses.
static INFERENCE_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Lets each inference of the sessions made from now on use `threads` cores
/// (1: the calling thread only). Each such session starts its own threads.
pub fn set_threads(threads: usize) {
    use tract_onnx::prelude::tract_linalg::multithread::set_threading_panel_threshold;
    INFERENCE_THREADS.store(threads.max(1), Ordering::Relaxed);

    // tract runs a matrix product on one thread when it has fewer than 64
    // panels of output. GoogLeNet's late layers are that small, and with two
    // threads from 8 panels up it took 16.2 ms instead of 17.1
    // (`imagenet-classroom bench --fixed-input --threads 2`).
    set_threading_panel_threshold(8);
}

/// The deterministic input the reference results in `shared/README.md` were
/// computed on: `((c * 7 + y * 3 + x) mod 17) / 17 - 0.5`.
pub fn fixed_input(size: usize) -> Tensor {
    let array = tract_ndarray::Array4::from_shape_fn((1, 3, size, size), |(_, c, y, x)| {
        ((c * 7 + y * 3 + x) % 17) as f32 / 17.0 - 0.5
    });
    array.into()
}

/// Turns logits into probabilities, stably.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// Indices of the `k` largest values, largest first, ties broken by lower index.
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..values.len()).collect();
    indices.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    indices.truncate(k);
    indices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_families_come_from_the_signature() {
        // EPYC 9654 (Zen 4), EPYC 9005 (Zen 5), Ryzen 5000 (Zen 3), a Xeon.
        assert_eq!(cpu_family(0x00A1_0F11), 0x19);
        assert_eq!(cpu_family(0x00B0_0F21), 0x1A);
        assert_eq!(cpu_family(0x00A2_0F10), 0x19);
        assert_eq!(cpu_family(0x0008_06F8), 0x6);
    }

    #[test]
    fn top_k_sorts_by_value_then_index() {
        let values = [0.1, 0.3, 0.05, 0.3, 0.25];
        assert_eq!(top_k(&values, 3), vec![1, 3, 4]);
        assert_eq!(top_k(&values, 10), vec![1, 3, 4, 0, 2]);
        assert_eq!(top_k(&values, 0), Vec::<usize>::new());
    }

    #[test]
    fn softmax_is_a_stable_distribution() {
        let p = softmax(&[1000.0, 1000.0, 998.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - p[1]).abs() < 1e-7);
        assert!((p[0] / p[2] - std::f32::consts::E.powi(2)).abs() < 1e-3);
    }
}
