//! The GoogLeNet graph (random weights) on the fixed input matches ONNX
//! Runtime's output to 1e-4: every operator the course's network needs,
//! including our rewritten LRN and ceil-mode pooling, computes right in tract.

mod common;

use imagenet_classroom::model::{fixed_input, top_k};

/// ONNX Runtime 1.32's top five and minimum, from shared/README.md.
const TOP5: [(usize, f32); 5] =
    [(373, 0.00205356), (662, 0.00190087), (985, 0.00183574), (859, 0.00173056), (208, 0.00169186)];
const MIN: f32 = 0.000513399;

pub fn check_against_reference(probabilities: &[f32]) {
    assert_eq!(probabilities.len(), 1000);
    let top: Vec<usize> = top_k(probabilities, 5);
    assert_eq!(top, TOP5.iter().map(|(i, _)| *i).collect::<Vec<_>>());
    for (index, expected) in TOP5 {
        let got = probabilities[index];
        assert!(((got - expected) / expected).abs() < 1e-4, "class {index}: {got} vs {expected}");
    }
    let min = probabilities.iter().copied().fold(f32::INFINITY, f32::min);
    assert!(((min - MIN) / MIN).abs() < 1e-4, "minimum {min} vs {MIN}");
    let sum: f32 = probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4, "sum {sum}");
}

#[test]
fn googlenet_graph_matches_onnx_runtime() {
    let classifier = common::classifier("googlenet-shape-random");
    let mut session = classifier.session().unwrap();
    let probabilities = classifier.probabilities(&mut session, fixed_input(224)).unwrap();
    check_against_reference(&probabilities);
    // A second run on the same session (reused buffers) gives the same output.
    let again = classifier.probabilities(&mut session, fixed_input(224)).unwrap();
    assert_eq!(probabilities, again);
}
