//! Local response normalisation (the ONNX `LRN` operator, used twice by
//! GoogLeNet) as an operator of our own, registered with tract's ONNX loader.
//!
//! tract's own LRN computes every output element on its own, re-reading its
//! whole channel window and calling `powf`, and took more than half of
//! GoogLeNet's running time. [`Lrn`] computes the same formula,
//! `y = x / (bias + alpha / size * sum of x² over a window of channels)^beta`,
//! one channel plane at a time: the squares once, each window as a sum of
//! whole planes, and the power as two square roots when beta is the usual
//! 0.75. Every inner loop runs over a contiguous plane, which the compiler
//! vectorises. When tract runs with several threads, they share the planes.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// Makes `onnx` load every `LRN` node as [`FastLrn`].
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register.insert("LRN", load_lrn);
}

fn load_lrn(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    // Defaults from the ONNX operator specification.
    let lrn = FastLrn {
        alpha: node.get_attr_opt("alpha")?.unwrap_or(0.0001),
        beta: node.get_attr_opt("beta")?.unwrap_or(0.75),
        bias: node.get_attr_opt("bias")?.unwrap_or(1.0),
        size: node.get_attr("size")?,
    };
    ensure!(lrn.size >= 1, "LRN node {} has size {}, it must be at least 1", node.name, lrn.size);
    Ok((expand(lrn), vec![]))
}

/// LRN across channels of an NCHW tensor, expanded into tract's core operators.
#[derive(Debug, Clone, PartialEq)]
pub struct FastLrn {
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
    pub size: usize,
}

impl Expansion for FastLrn {
    fn name(&self) -> StaticName {
        "FastLrn".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?;
        ensure!(
            fact.rank() == 4 && fact.datum_type == f32::datum_type(),
            "LRN {prefix} needs a float32 NCHW input, got {fact:?}"
        );
        model.wire_node(prefix, Lrn(self.clone()), inputs)
    }
}

/// The LRN computation itself, as a tract operator on float32 NCHW tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Lrn(pub FastLrn);

impl Eq for Lrn {}

impl Op for Lrn {
    fn name(&self) -> StaticName {
        "Lrn (fused)".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Lrn {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape().to_vec();
        let x = input.to_plain_array_view::<f32>()?;
        let x = x.as_slice().context("LRN input is not in standard layout")?;
        let mut output = vec![0f32; x.len()];
        let plane = shape[2] * shape[3];
        let channels = shape[1];

        let squares: Vec<f32> = x.iter().map(|v| v * v).collect();

        // Each output plane needs only the squares around its channel, so with
        // several threads each takes a share of the planes.
        par_chunks_mut(&mut output, plane, x.len() * self.0.size, |first, y| {
            let mut window = vec![0f32; plane];
            for (p, y) in (first..).zip(y.chunks_exact_mut(plane)) {
                let (n, c) = (p / channels, p % channels);
                let image = &squares[n * channels * plane..(n + 1) * channels * plane];
                let x = &x[p * plane..(p + 1) * plane];
                self.0.normalize_plane(image, c, channels, x, y, &mut window);
            }
            Ok(())
        })?;

        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(shape, output)?.into_tvalue()))
    }
}

impl TypedOp for Lrn {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].without_value()))
    }
}

impl FastLrn {
    /// Normalises channel `c` of one image into `y`, given `x`, that channel's
    /// plane, and the squares of all the image's `channels` planes. `window`
    /// is scratch space the size of a plane.
    fn normalize_plane(
        &self,
        squares: &[f32],
        c: usize,
        channels: usize,
        x: &[f32],
        y: &mut [f32],
        window: &mut [f32],
    ) {
        let plane = x.len();
        let below = (self.size - 1) / 2;
        let above = self.size - 1 - below;
        let alpha = self.alpha / self.size as f32;

        // The window [c - below, c + above], clipped to the channels that exist.
        let first = c.saturating_sub(below);
        let last = (c + above).min(channels - 1);
        window.copy_from_slice(&squares[first * plane..(first + 1) * plane]);
        for k in first + 1..=last {
            for (w, s) in window.iter_mut().zip(&squares[k * plane..(k + 1) * plane]) {
                *w += s;
            }
        }

        if self.beta == 0.75 {
            // base^-0.75 = r * sqrt(r) with r = 1 / sqrt(base)
            for ((y, x), w) in y.iter_mut().zip(x).zip(&*window) {
                let r = 1.0 / (self.bias + alpha * w).sqrt();
                *y = x * r * r.sqrt();
            }
        } else {
            for ((y, x), w) in y.iter_mut().zip(x).zip(&*window) {
                *y = x * (self.bias + alpha * w).powf(-self.beta);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ONNX formula, element by element.
    fn naive(x: &tract_ndarray::ArrayD<f32>, lrn: &FastLrn) -> tract_ndarray::ArrayD<f32> {
        let channels = x.shape()[1] as isize;
        let below = ((lrn.size - 1) / 2) as isize;
        let above = (lrn.size / 2) as isize;
        let mut y = x.clone().into_dimensionality::<tract_ndarray::Ix4>().unwrap();
        for ((n, c, h, w), out) in y.indexed_iter_mut() {
            let c = c as isize;
            let sum: f32 = ((c - below).max(0)..=(c + above).min(channels - 1))
                .map(|k| x[[n, k as usize, h, w]].powi(2))
                .sum();
            *out = x[[n, c as usize, h, w]]
                / (lrn.bias + lrn.alpha / lrn.size as f32 * sum).powf(lrn.beta);
        }
        y.into_dyn()
    }

    fn run_expanded(x: &tract_ndarray::ArrayD<f32>, lrn: &FastLrn) -> tract_ndarray::ArrayD<f32> {
        let mut model = TypedModel::default();
        let source = model.add_source("x", f32::fact(x.shape())).unwrap();
        let output = lrn.wire("lrn", &mut model, &[source]).unwrap();
        model.select_output_outlets(&output).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let result = plan.run(tvec!(x.clone().into_tvalue())).unwrap();
        result[0].to_plain_array_view::<f32>().unwrap().to_owned()
    }

    #[test]
    fn two_threads_give_what_one_gives() {
        use tract_onnx::prelude::tract_linalg::multithread::{multithread_tract_scope, Executor};

        // Big enough for tract to share the planes out (it keeps small
        // tensors on one thread).
        let lrn = FastLrn { alpha: 1e-4, beta: 0.75, bias: 1.0, size: 5 };
        let x = tract_ndarray::ArrayD::from_shape_fn(vec![2, 24, 28, 28], |ix| {
            ((ix[0] * 31 + ix[1] * 17 + ix[2] * 7 + ix[3] * 3) % 23) as f32 * 4.0 - 40.0
        });
        let one = run_expanded(&x, &lrn);
        let two = multithread_tract_scope(Executor::multithread(2), || run_expanded(&x, &lrn));
        assert_eq!(one, two);
        for (g, w) in two.iter().zip(naive(&x, &lrn).iter()) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn expansion_equals_the_onnx_formula() {
        // Odd and even windows, GoogLeNet's beta and another, a window wider
        // than the channels, and values large enough for the base to matter.
        let cases = [
            FastLrn { alpha: 1e-4, beta: 0.75, bias: 1.0, size: 5 },
            FastLrn { alpha: 0.5, beta: 0.75, bias: 2.0, size: 4 },
            FastLrn { alpha: 0.3, beta: 0.6, bias: 1.5, size: 3 },
            FastLrn { alpha: 1.0, beta: 1.0, bias: 1.0, size: 9 },
        ];
        let x = tract_ndarray::ArrayD::from_shape_fn(vec![2, 7, 3, 4], |ix| {
            ((ix[0] * 31 + ix[1] * 17 + ix[2] * 7 + ix[3] * 3) % 23) as f32 / 2.0 - 5.0
        });
        for lrn in cases {
            let (got, want) = (run_expanded(&x, &lrn), naive(&x, &lrn));
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{lrn:?}: {g} vs {w}");
            }
        }
    }
}
