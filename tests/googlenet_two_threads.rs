//! With two threads per inference the output is the same as with one. Kept
//! in its own test binary because the thread count is process-wide.

mod common;

use imagenet_classroom::model::{fixed_input, set_threads};

#[test]
fn two_threads_give_the_same_probabilities_as_one() {
    let classifier = common::classifier("googlenet-shape-random");
    let mut session = classifier.session().unwrap();
    set_threads(1);
    let one = classifier.probabilities(&mut session, fixed_input(224)).unwrap();
    set_threads(2);
    let two = classifier.probabilities(&mut session, fixed_input(224)).unwrap();
    set_threads(1);
    let max_diff = one.iter().zip(&two).map(|(a, b)| ((a - b) / a).abs()).fold(0.0, f32::max);
    assert!(max_diff < 1e-5, "one and two threads differ by {max_diff} (relative)");
    let argmax = |p: &[f32]| imagenet_classroom::model::top_k(p, 1)[0];
    assert_eq!((argmax(&one), argmax(&two)), (373, 373));
}
