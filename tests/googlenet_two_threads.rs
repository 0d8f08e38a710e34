//! With two threads per inference the output is the same as with one, also
//! when several workers of two threads each classify at the same time. Kept
//! in its own test binary because the thread count is process-wide.

mod common;

use imagenet_classroom::model::{fixed_input, set_threads, top_k};

#[test]
fn two_threads_give_the_same_probabilities_as_one() {
    let classifier = common::classifier("googlenet-shape-random");
    set_threads(1);
    let one = classifier.probabilities(&mut classifier.session().unwrap(), fixed_input(224));
    let one = one.unwrap();
    assert_eq!(top_k(&one, 1)[0], 373);

    set_threads(2);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                scope.spawn(|| {
                    let mut session = classifier.session().unwrap();
                    (0..8)
                        .map(|_| classifier.probabilities(&mut session, fixed_input(224)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (worker, handle) in workers.into_iter().enumerate() {
            for (run, two) in handle.join().expect("a worker panicked").iter().enumerate() {
                let max_diff =
                    one.iter().zip(two).map(|(a, b)| ((a - b) / a).abs()).fold(0.0, f32::max);
                assert!(
                    max_diff < 1e-5,
                    "worker {worker}, run {run}: one and two threads differ by {max_diff}"
                );
            }
        }
    });
    set_threads(1);
}
