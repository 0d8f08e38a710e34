//! The classification workers: a fixed set of threads, each with its own
//! model session, fed through a bounded queue. Decoding, preprocessing and
//! inference all happen here, never on the threads that serve sockets; a
//! full queue is refused at once so that the page can say "busy" instead of
//! making students wait without end.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::model::{Classification, Classifier, ClassifyError};

/// What a worker sends back.
pub type Outcome = Result<Classification, ClassifyError>;

/// The queue is full: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the classification queue is full")]
pub struct Busy;

struct Job {
    bytes: Bytes,
    top: usize,
    reply: oneshot::Sender<Outcome>,
}

/// A running pool of classification threads.
pub struct Pool {
    sender: SyncSender<Job>,
    workers: usize,
}

impl Pool {
    /// Starts `workers` threads sharing one classifier, with room for
    /// `queue` classifications waiting beside those running.
    ///
    /// By default there is one worker per core and each inference runs on
    /// its worker's thread alone (`threads = 1`). Measured with 104 students
    /// uploading without pause on two cores (GoogLeNet graph, `scripts/load-test
    /// --serve`, AMD EPYC Zen 5): two single-threaded workers classify 55.9
    /// photos a second, one worker with two threads 45.9, because the threads
    /// of one inference wait for each other at every layer, and the small
    /// layers late in the network hardly split. Batching concurrent photos
    /// lost too: tract took 36.5 ms a picture in batches of two against 12.7 ms
    /// alone (MobileNetV2, `bench --batch`), and the GoogLeNet graph fixes its
    /// batch size at one. A single student on an idle server waits longer this
    /// way (about 29 ms, not 20), but a class is served faster. `workers` and
    /// `threads` stay configurable.
    pub fn start(
        classifier: Arc<Classifier>,
        workers: usize,
        queue: usize,
    ) -> anyhow::Result<Pool> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for number in 0..workers.max(1) {
            // Sessions are made here so that a failure stops start-up.
            let session = classifier.session().context("cannot start a model session")?;
            let (classifier, receiver) = (classifier.clone(), receiver.clone());
            std::thread::Builder::new()
                .name(format!("classify-{number}"))
                .spawn(move || work(&classifier, session, &receiver))
                .context("cannot start a classification thread")?;
        }
        Ok(Pool { sender, workers: workers.max(1) })
    }

    /// How many threads classify.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Queues a picture; the answer arrives on the returned receiver.
    pub fn submit(&self, bytes: Bytes, top: usize) -> Result<oneshot::Receiver<Outcome>, Busy> {
        let (reply, answer) = oneshot::channel();
        match self.sender.try_send(Job { bytes, top, reply }) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(Busy),
            // The workers only stop when the process does.
            Err(TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// Classifies a picture on the pool and waits for the answer.
    pub async fn classify(&self, bytes: Bytes, top: usize) -> Result<Outcome, Busy> {
        let answer = self.submit(bytes, top)?;
        Ok(answer.await.unwrap_or_else(|_| {
            Err(ClassifyError::Inference(anyhow::anyhow!("the classification thread stopped")))
        }))
    }
}

fn work(
    classifier: &Classifier,
    mut session: crate::model::Session,
    receiver: &Mutex<Receiver<Job>>,
) {
    loop {
        // Holding the lock while waiting is what hands each job to exactly
        // one idle worker.
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };

        // A panic inside a decoder or the model must not take the worker
        // with it; its session may be half-updated, so it gets a new one.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            classifier.classify(&mut session, &job.bytes, job.top)
        }))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            match classifier.session() {
                Ok(fresh) => session = fresh,
                Err(e) => log::error!("cannot renew the model session: {e:#}"),
            }
            Err(ClassifyError::Inference(anyhow::anyhow!("classification panicked: {what}")))
        });
        // The request may have gone away (client disconnected): nothing to do.
        let _ = job.reply.send(outcome);
    }
}
