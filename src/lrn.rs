//! Local response normalisation (the ONNX `LRN` operator, used twice by
//! GoogLeNet) rewritten into operators tract runs with its vectorised kernels.
//!
//! tract's own LRN computes every output element on its own, with a `powf`
//! each time, and took more than half of GoogLeNet's running time. The
//! expansion here wires the same formula,
//! `y = x / (bias + alpha / size * sum of x² over a window of channels)^beta`,
//! as a square, a padded sum of shifted channel slices, and element-wise
//! arithmetic that tract's optimiser fuses.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode, Slice};
use tract_onnx::tract_core::ops::math;
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
        let x = inputs[0];
        let fact = model.outlet_fact(x)?.clone();
        ensure!(
            fact.rank() == 4 && fact.datum_type == f32::datum_type(),
            "LRN {prefix} needs a float32 NCHW input, got {fact:?}"
        );
        let channels = fact.shape[1].clone();
        let constant = |model: &mut TypedModel, name: &str, value: f32| {
            model.add_const(format!("{prefix}.{name}"), tensor0(value).broadcast_into_rank(4)?)
        };

        // Sum of squares over the window [c - (size-1)/2, c + ceil((size-1)/2)],
        // clipped to the channels that exist: pad with zero channels, then add
        // `size` shifted slices.
        let squares = model.wire_node(format!("{prefix}.square"), math::square(), &[x])?[0];
        let before = (self.size - 1) / 2;
        let after = self.size - 1 - before;
        let pad = Pad {
            pads: vec![(0, 0), (before, after), (0, 0), (0, 0)],
            mode: PadMode::Constant(rctensor0(0f32)),
        };
        let padded = model.wire_node(format!("{prefix}.pad"), pad, &[squares])?[0];
        let mut sum = None;
        for shift in 0..self.size {
            let slice = Slice::new(1, shift, channels.clone() + shift);
            let window = model.wire_node(format!("{prefix}.shift{shift}"), slice, &[padded])?[0];
            sum = Some(match sum {
                None => window,
                Some(acc) => {
                    model.wire_node(format!("{prefix}.sum{shift}"), math::add(), &[acc, window])?[0]
                }
            });
        }
        let sum = sum.expect("size is at least 1");

        // bias + alpha / size * sum
        let alpha = constant(model, "alpha_over_size", self.alpha / self.size as f32)?;
        let scaled = model.wire_node(format!("{prefix}.scaled"), math::mul(), &[sum, alpha])?[0];
        let bias = constant(model, "bias", self.bias)?;
        let base = model.wire_node(format!("{prefix}.base"), math::add(), &[scaled, bias])?[0];

        // base^-beta. The usual beta of 0.75 is rsqrt(base) * sqrt(rsqrt(base)),
        // two cheap vectorised roots instead of a `powf` per element.
        let factor = if self.beta == 0.75 {
            let r = model.wire_node(format!("{prefix}.rsqrt"), math::rsqrt(), &[base])?[0];
            let rr = model.wire_node(format!("{prefix}.sqrt_rsqrt"), math::sqrt(), &[r])?[0];
            model.wire_node(format!("{prefix}.factor"), math::mul(), &[r, rr])?[0]
        } else {
            let exponent = constant(model, "minus_beta", -self.beta)?;
            model.wire_node(format!("{prefix}.factor"), math::pow(), &[base, exponent])?[0]
        };
        model.wire_node(prefix, math::mul(), &[x, factor])
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
