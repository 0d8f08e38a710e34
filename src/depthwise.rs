//! Depthwise convolutions with a stride of two, as tract's fast path for them
//! takes only a stride of one. MobileNetV2's 96-channel one at 112 pixels took
//! 2.8 ms, where a stride-1 one with half again as many multiplications took
//! 0.5 ms: with a stride of two tract walks every output through its general
//! patch machinery.
//!
//! Each such convolution becomes the same convolution with a stride of one,
//! followed by [`EverySecond`], which keeps every second row and column. The
//! values are the same: with the original padding, the stride-1 output at `2i`
//! is the stride-2 output at `i`. It does four times the multiplications, at
//! about eight times the speed. (tract's own `Downsample` does not serve: it
//! copies through a general strided view, at 0.5 ms for one axis of the
//! 96-channel output, and decluttering folds it back into the stride.)

use tract_onnx::prelude::tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Rewrites each of `model`'s float32 depthwise convolutions over channels,
/// rows and columns (with or without a batch axis first) with a stride of two
/// on both spatial axes, and says how many it rewrote.
///
/// Call it on the decluttered model, just before it is optimised.
pub fn replace_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else { continue };
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(stride_one) = with_stride_one(conv, input) else { continue };

        let mut patch = TypedModelPatch::default();
        let inputs = patch.taps(model, &node.inputs)?;
        let wire = patch.wire_node(format!("{}.stride1", node.name), stride_one, &inputs)?;
        let wire = patch.wire_node(format!("{}.every_second", node.name), EverySecond, &wire)?;
        patch.shunt_outside(model, OutletId::new(id, 0), wire[0])?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// The stride-1 form of `conv`, when it is a depthwise convolution this
/// rewrite covers.
fn with_stride_one(conv: &Conv, input: &TypedFact) -> Option<Conv> {
    let spec = &conv.pool_spec;
    let depthwise =
        conv.group > 1 && conv.group == spec.input_channels && conv.group == spec.output_channels;
    let covered = depthwise
        && conv.q_params.is_none()
        && matches!((spec.data_format, input.rank()), (DataFormat::NCHW, 4) | (DataFormat::CHW, 3))
        && spec.kernel_shape.len() == 2
        && spec.strides().iter().all(|s| *s == 2)
        && spec.dilations().iter().all(|d| *d == 1)
        && input.datum_type == f32::datum_type();
    let shape = input.shape.as_concrete().filter(|_| covered)?;

    // The padding the stride-2 convolution works with, made explicit: a
    // "same" padding would be worked out anew for a stride of one.
    let padded = spec.computed_padding(&shape[shape.len() - 2..]);
    let before = padded.iter().map(|p| p.pad_before).collect();
    let after = padded.iter().map(|p| p.pad_after).collect();
    let mut stride_one = conv.clone();
    stride_one.pool_spec.strides = None;
    stride_one.pool_spec.padding = PaddingSpec::Explicit(before, after);
    Some(stride_one)
}

/// Keeps the even rows and columns of each plane of a float32 tensor: the
/// last two axes are rows and columns, the others count planes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EverySecond;

impl Op for EverySecond {
    fn name(&self) -> StaticName {
        "EverySecond".into()
    }

    op_as_typed_op!();
}

impl EvalOp for EverySecond {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let rank = shape.len();
        ensure!(rank >= 2, "every second row and column of a tensor of shape {shape:?}");
        let x = input.to_plain_array_view::<f32>()?;
        let x = x.as_slice().context("every-second input is not in standard layout")?;

        let (height, width) = (shape[rank - 2], shape[rank - 1]);
        let (out_height, out_width) = (height.div_ceil(2), width.div_ceil(2));
        let planes = shape[..rank - 2].iter().product::<usize>();
        let mut output = vec![0f32; planes * out_height * out_width];
        let out_plane = out_height * out_width;

        par_chunks_mut(&mut output, out_plane, planes * out_plane, |first, y| {
            let x = &x[first * height * width..];
            for (x, y) in x.chunks_exact(height * width).zip(y.chunks_exact_mut(out_plane)) {
                let rows = x.chunks_exact(width).step_by(2);
                for (row, out) in rows.zip(y.chunks_exact_mut(out_width)) {
                    out.iter_mut().zip(row.iter().step_by(2)).for_each(|(o, v)| *o = *v);
                }
            }
            Ok(())
        })?;

        let mut output_shape: TVec<usize> = shape.into();
        output_shape[rank - 2] = out_height;
        output_shape[rank - 1] = out_width;
        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(&*output_shape, output)?.into_tvalue()))
    }
}

impl TypedOp for EverySecond {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        let rank = shape.len();
        ensure!(rank >= 2, "every second row and column of a tensor of rank {rank}");
        for axis in [rank - 2, rank - 1] {
            shape[axis] = shape[axis].clone().div_ceil(2);
        }
        Ok(tvec!(f32::fact(shape)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{KernelFormat, PoolSpec};

    /// A model of one depthwise 3×3 convolution with a stride of two over a
    /// `[1, channels, height, width]` input, with made-up weights and bias.
    fn one_convolution(
        channels: usize,
        height: usize,
        width: usize,
        padding: PaddingSpec,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, channels, height, width])).unwrap();
        let weights: Vec<f32> =
            (0..channels * 9).map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.4).collect();
        let kernel = tensor1(&weights).into_shape(&[channels, 1, 3, 3]).unwrap();
        let bias: Vec<f32> = (0..channels).map(|c| c as f32 * 0.1).collect();
        let kernel = model.add_const("kernel", kernel).unwrap();
        let bias = model.add_const("bias", tensor1(&bias)).unwrap();
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![3, 3],
                padding,
                dilations: None,
                strides: Some(tvec![2, 2]),
                input_channels: channels,
                output_channels: channels,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: channels,
            q_params: None,
        };
        let y = model.wire_node("conv", conv, &[x, kernel, bias]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(mut model: TypedModel, input: &Tensor) -> (Vec<usize>, Vec<f32>) {
        model.optimize().unwrap();
        let plan = model.into_runnable().unwrap();
        let output = plan.run(tvec![input.clone().into_tvalue()]).unwrap();
        let values = output[0].to_plain_array_view::<f32>().unwrap();
        (values.shape().to_vec(), values.iter().copied().collect())
    }

    #[test]
    fn stride_one_then_every_second_gives_the_stride_two_values() {
        let cases = [
            (3, 8, 8, PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            (2, 7, 9, PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1])),
            (4, 8, 8, PaddingSpec::SameUpper),
            (2, 9, 6, PaddingSpec::SameLower),
            (2, 9, 7, PaddingSpec::Valid),
        ];
        for (channels, height, width, padding) in cases {
            let what = format!("{channels}×{height}×{width}, {padding:?}");
            let values: Vec<f32> =
                (0..channels * height * width).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
            let input = tensor1(&values).into_shape(&[1, channels, height, width]).unwrap();

            let original = one_convolution(channels, height, width, padding.clone());
            let mut rewritten = original.clone();
            assert_eq!(replace_in(&mut rewritten).unwrap(), 1, "{what}");
            let (expected_shape, expected) = run(original, &input);
            let (shape, got) = run(rewritten, &input);
            assert_eq!(shape, expected_shape, "{what}");
            for (g, e) in got.iter().zip(expected) {
                assert!((g - e).abs() <= 1e-5 * e.abs().max(1.0), "{what}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn other_convolutions_are_left_alone() {
        let mut model = one_convolution(3, 8, 8, PaddingSpec::Valid);
        let conv = model.node_mut(model.output_outlets().unwrap()[0].node);
        let conv = conv.op_as_mut::<Conv>().unwrap();
        conv.pool_spec.strides = Some(tvec![1, 1]);
        assert_eq!(replace_in(&mut model).unwrap(), 0, "stride one");
    }

    #[test]
    fn every_second_keeps_even_rows_and_columns() {
        // Two planes of 3 × 5, each element its own index.
        let input = tensor1(&(0..30).map(|i| i as f32).collect::<Vec<_>>());
        let input = input.into_shape(&[2, 3, 5]).unwrap();
        let ctx = EvalContext::out_of_plan();
        let output = EverySecond.eval(&ctx, tvec![input.into_tvalue()]).unwrap().remove(0);
        assert_eq!(output.shape(), [2, 2, 3]);
        let expected = [0., 2., 4., 10., 12., 14., 15., 17., 19., 25., 27., 29.];
        let values = output.to_plain_array_view::<f32>().unwrap();
        assert_eq!(values.iter().copied().collect::<Vec<_>>(), expected);
    }
}
