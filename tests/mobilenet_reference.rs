//! MobileNetV2 on the fixed input matches ONNX Runtime's logits to 1e-4, with
//! its four stride-2 depthwise convolutions rewritten as stride 1 and every
//! second row and column (src/depthwise.rs).

mod common;

use imagenet_classroom::depthwise::EverySecond;
use imagenet_classroom::model::{fixed_input, load_plan, top_k};
use tract_onnx::prelude::*;

/// ONNX Runtime 1.32's top five logits and the smallest, from shared/README.md.
const TOP5: [(usize, f32); 5] =
    [(418, 7.58001), (623, 6.96844), (618, 6.87388), (446, 6.64254), (549, 6.38698)];
const MIN: f32 = -6.4763;

#[test]
fn mobilenetv2_with_rewritten_strides_matches_onnx_runtime() {
    let plan = load_plan(&common::manifest("mobilenetv2"), 1000, 1).unwrap();
    let rewritten = plan.model().nodes().iter().filter(|n| n.op_is::<EverySecond>()).count();
    assert_eq!(rewritten, 4, "MobileNetV2's stride-2 depthwise convolutions rewritten");

    let output = plan.run(tvec![fixed_input(224).into_tvalue()]).unwrap();
    let logits = output[0].to_plain_array_view::<f32>().unwrap();
    let logits = logits.as_slice().unwrap();
    assert_eq!(logits.len(), 1000);
    assert_eq!(top_k(logits, 5), TOP5.iter().map(|(i, _)| *i).collect::<Vec<_>>());
    for (index, expected) in TOP5 {
        let got = logits[index];
        assert!(((got - expected) / expected).abs() < 1e-4, "class {index}: {got} vs {expected}");
    }
    let min = logits.iter().copied().fold(f32::INFINITY, f32::min);
    assert!(((min - MIN) / MIN).abs() < 1e-4, "smallest logit {min} vs {MIN}");
}
