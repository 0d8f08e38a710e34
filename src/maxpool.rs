//! Two-dimensional max pooling (GoogLeNet has thirteen 3×3 pools) as an
//! operator of our own, put in place of tract's before the model is optimised.
//!
//! tract's pooling walks every window through its general patch machinery,
//! one input element at a time, and took 14% of GoogLeNet's running time.
//! [`FastMaxPool`] does the same in two passes over contiguous rows: each
//! output row is first the maximum of the input rows its windows cover (whole
//! rows at once, which the compiler vectorises), then of neighbouring columns
//! of that row. Padding never wins a maximum, so it is taken as -infinity.
//! When tract runs with several threads, they share the channel planes.

use tract_onnx::prelude::tract_linalg::multithread::par_chunks_mut;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::MaxPool;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// Puts a [`FastMaxPool`] in place of each of `model`'s max pools that it
/// can compute (float32 NCHW, two spatial axes, no dilation, no indices
/// output, fixed shape), and says how many it replaced.
pub fn replace_in(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(pool) = node.op_as::<MaxPool>() else { continue };
        let input = model.outlet_fact(node.inputs[0])?;
        let Some(fast) = FastMaxPool::for_pool(pool, input)? else { continue };

        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, fast)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// The geometry of one pooling, resolved for its input's fixed shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastMaxPool {
    /// tract's operator, which still states the output's shape.
    original: MaxPool,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad_before: [usize; 2],
    input: [usize; 2],
    output: [usize; 2],
}

impl FastMaxPool {
    /// The fast form of `pool` on `input`, or `None` when it is a case this
    /// operator does not cover (tract's own then stays).
    fn for_pool(pool: &MaxPool, input: &TypedFact) -> TractResult<Option<FastMaxPool>> {
        let spec = &pool.pool_spec;
        let simple = pool.with_index_outputs.is_none()
            && spec.data_format == DataFormat::NCHW
            && spec.kernel_shape.len() == 2
            && spec.dilations().iter().all(|d| *d == 1)
            && input.datum_type == f32::datum_type()
            && input.rank() == 4;
        let Some(shape) = input.shape.as_concrete().filter(|_| simple) else { return Ok(None) };

        let input_hw = [shape[2], shape[3]];
        let padded = spec.computed_padding(&input_hw);
        let strides = spec.strides();
        Ok(Some(FastMaxPool {
            original: pool.clone(),
            kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
            stride: [strides[0], strides[1]],
            pad_before: [padded[0].pad_before, padded[1].pad_before],
            input: input_hw,
            output: [padded[0].convoluted, padded[1].convoluted],
        }))
    }

    /// Pools one channel plane `x` into `y`, with `row` and `maxima` as scratch
    /// space (both [`Self::row_width`] long).
    fn pool_plane(&self, x: &[f32], y: &mut [f32], row: &mut [f32], maxima: &mut [f32]) {
        let [in_h, in_w] = self.input;
        let [out_h, out_w] = self.output;
        let [kernel_h, kernel_w] = self.kernel;
        let [stride_h, stride_w] = self.stride;
        let [pad_top, pad_left] = self.pad_before;

        for (oy, out_row) in y.chunks_exact_mut(out_w).enumerate().take(out_h) {
            // Vertical pass: the input rows this output row's windows cover,
            // clipped to the rows that exist. `row` keeps -infinity on both
            // sides of them, where the windows reach into the padding.
            let top = (oy * stride_h) as isize - pad_top as isize;
            let first = top.max(0) as usize;
            let end = ((top + kernel_h as isize).max(0) as usize).min(in_h);
            let middle = &mut row[pad_left..pad_left + in_w];
            if first < end {
                middle.copy_from_slice(&x[first * in_w..(first + 1) * in_w]);
                for r in first + 1..end {
                    for (m, v) in middle.iter_mut().zip(&x[r * in_w..(r + 1) * in_w]) {
                        *m = if *v > *m { *v } else { *m };
                    }
                }
            } else {
                middle.fill(f32::NEG_INFINITY);
            }

            // Horizontal pass: the maximum of every run of `kernel_w` neighbouring
            // columns, whole rows at once, then every `stride_w`-th of them. With
            // a stride of 2 this does twice the comparisons it needs, yet beats
            // taking each window on its own, which does not vectorise.
            if stride_w == 1 {
                sliding_max(row, kernel_w, out_row);
            } else {
                let maxima = &mut maxima[..(out_w - 1) * stride_w + 1];
                sliding_max(row, kernel_w, maxima);
                for (o, m) in out_row.iter_mut().zip(maxima.iter().step_by(stride_w)) {
                    *o = *m;
                }
            }
        }
    }

    /// How wide the scratch row must be: the input row with its padding on
    /// both sides, as far as the windows reach.
    fn row_width(&self) -> usize {
        let reach = (self.output[1] - 1) * self.stride[1] + self.kernel[1];
        reach.max(self.pad_before[1] + self.input[1])
    }
}

/// `out[j]` = the maximum of `row[j..j + kernel]`, for each `j` of `out`.
fn sliding_max(row: &[f32], kernel: usize, out: &mut [f32]) {
    let n = out.len();
    out.copy_from_slice(&row[..n]);
    for k in 1..kernel {
        for (o, v) in out.iter_mut().zip(&row[k..k + n]) {
            *o = if *v > *o { *v } else { *o };
        }
    }
}

impl Op for FastMaxPool {
    fn name(&self) -> StaticName {
        "MaxPool (rows)".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "kernel {:?}, stride {:?}, padding before {:?}",
            self.kernel, self.stride, self.pad_before
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for FastMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(
            shape[2..] == self.input,
            "max pool planned for {:?} got an input of shape {shape:?}",
            self.input
        );
        let x = input.to_plain_array_view::<f32>()?;
        let x = x.as_slice().context("max pool input is not in standard layout")?;

        let planes = shape[0] * shape[1];
        let (in_plane, out_plane) =
            (self.input[0] * self.input[1], self.output[0] * self.output[1]);
        let mut output = vec![0f32; planes * out_plane];

        // Planes are independent: with several threads, each takes a share of them.
        par_chunks_mut(&mut output, out_plane, planes * in_plane, |first, y| {
            let width = self.row_width();
            let (mut row, mut maxima) = (vec![f32::NEG_INFINITY; width], vec![0f32; width]);
            let x = &x[first * in_plane..];
            for (x, y) in x.chunks_exact(in_plane).zip(y.chunks_exact_mut(out_plane)) {
                self.pool_plane(x, y, &mut row, &mut maxima);
            }
            Ok(())
        })?;

        let output_shape = [shape[0], shape[1], self.output[0], self.output[1]];
        Ok(tvec!(tract_ndarray::ArrayD::from_shape_vec(&output_shape[..], output)?.into_tvalue()))
    }
}

impl TypedOp for FastMaxPool {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.original.output_facts(inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::{PaddingSpec, PoolSpec};

    fn pool(kernel: [usize; 2], stride: [usize; 2], padding: PaddingSpec) -> MaxPool {
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel[0], kernel[1]],
            padding,
            dilations: None,
            strides: Some(tvec![stride[0], stride[1]]),
            input_channels: 3,
            output_channels: 3,
        };
        MaxPool::new(spec, None)
    }

    /// Runs tract's pool and ours on the same input; they must agree exactly.
    fn assert_same(pool: MaxPool, height: usize, width: usize) {
        let input: Tensor = tract_ndarray::Array4::from_shape_fn((2, 3, height, width), |i| {
            // Values that vary in every direction, with ties and negatives.
            ((i.0 * 31 + i.1 * 17 + i.2 * 7 + i.3 * 13) % 23) as f32 - 11.5
        })
        .into();
        let fact = f32::fact(input.shape());
        let fast = FastMaxPool::for_pool(&pool, &fact).unwrap().expect("a case we cover");

        let expected =
            pool.output_facts(&[&fact]).unwrap()[0].shape.as_concrete().unwrap().to_vec();
        let ctx = EvalContext::out_of_plan();
        let theirs = pool.eval(&ctx, tvec!(input.clone().into_tvalue())).unwrap().remove(0);
        let ours = fast.eval(&ctx, tvec!(input.into_tvalue())).unwrap().remove(0);
        assert_eq!(ours.shape(), &expected[..], "{pool:?}");
        assert_eq!(ours.into_tensor(), theirs.into_tensor(), "{pool:?} on {height}x{width}");
    }

    #[test]
    fn googlenet_pools_match_tracts() {
        let ceil = |pads| PaddingSpec::ExplicitOnnxPool(tvec![pads, pads], tvec![pads, pads], true);
        // pool1 to pool4: 3×3, stride 2, rounding the output size up.
        assert_same(pool([3, 3], [2, 2], ceil(0)), 112, 112);
        assert_same(pool([3, 3], [2, 2], ceil(0)), 13, 14);
        // The pools inside each inception module: 3×3, stride 1, padding 1.
        assert_same(pool([3, 3], [1, 1], ceil(1)), 28, 28);
        assert_same(pool([3, 3], [1, 1], ceil(1)), 7, 7);
    }

    #[test]
    fn two_threads_match_tracts() {
        use tract_onnx::prelude::tract_linalg::multithread::{multithread_tract_scope, Executor};

        // Big enough for tract to share the planes out among threads.
        let ceil = PaddingSpec::ExplicitOnnxPool(tvec![1, 1], tvec![1, 1], true);
        multithread_tract_scope(Executor::multithread(2), || {
            assert_same(pool([3, 3], [1, 1], ceil), 112, 112);
        });
    }

    #[test]
    fn other_geometries_match_tracts() {
        let explicit = |b: [usize; 2], a: [usize; 2]| {
            PaddingSpec::Explicit(tvec![b[0], b[1]], tvec![a[0], a[1]])
        };
        assert_same(pool([2, 2], [2, 2], PaddingSpec::Valid), 9, 10);
        assert_same(pool([3, 2], [1, 3], explicit([2, 0], [1, 1])), 8, 11);
        assert_same(pool([1, 1], [1, 1], PaddingSpec::Valid), 4, 5);
        assert_same(pool([5, 5], [3, 2], PaddingSpec::SameUpper), 11, 9);
        assert_same(
            pool([3, 3], [2, 2], PaddingSpec::ExplicitOnnxPool(tvec![1, 0], tvec![1, 2], true)),
            10,
            7,
        );
    }
}
