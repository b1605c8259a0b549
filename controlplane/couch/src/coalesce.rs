//! A latest-value slot between the changes follower and the apply loop.
//!
//! An apply can take seconds (a profile restart waits 10 s; an upgrade much longer).
//! Revisions that arrive meanwhile must not queue up: only the newest matters, because
//! the host converges on a desired state, it does not replay directives. The slot keeps
//! exactly one value; `put` replaces it, `next` takes it.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

struct Shared<T> {
    state: Mutex<State<T>>,
    notify: Notify,
}

struct State<T> {
    value: Option<T>,
    /// Values replaced before anyone took them (for logs: "skipped N revisions").
    superseded: u64,
    closed: bool,
}

/// The writing end. Dropping it closes the slot once its last value is taken.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The reading end.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A new, empty slot.
pub fn slot<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: None,
            superseded: 0,
            closed: false,
        }),
        notify: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

fn lock<T>(shared: &Shared<T>) -> std::sync::MutexGuard<'_, State<T>> {
    // A panic while holding this lock cannot leave the state half-written (each
    // critical section is one assignment), so a poisoned lock is still usable.
    shared.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T> Sender<T> {
    /// Stores `value`, replacing (and dropping) any value not yet taken.
    pub fn put(&self, value: T) {
        {
            let mut st = lock(&self.shared);
            if st.value.replace(value).is_some() {
                st.superseded += 1;
            }
        }
        self.shared.notify.notify_one();
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.notify.notify_one();
    }
}

impl<T> Receiver<T> {
    /// Waits for a value and takes it, with how many older values it replaced since the
    /// last take. `None` once the sender is gone and the slot is empty.
    pub async fn next(&mut self) -> Option<(T, u64)> {
        loop {
            {
                let mut st = lock(&self.shared);
                if let Some(v) = st.value.take() {
                    let skipped = std::mem::take(&mut st.superseded);
                    return Some((v, skipped));
                }
                if st.closed {
                    return None;
                }
            }
            // `notify_one` stores a permit if nobody waits yet, so a `put` between the
            // check above and this await is not lost.
            self.shared.notify.notified().await;
        }
    }

    /// Takes the value if one is there, without waiting.
    pub fn try_take(&mut self) -> Option<T> {
        lock(&self.shared).value.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn newest_wins_while_busy() {
        let (tx, mut rx) = slot();
        for i in 0..50 {
            tx.put(i);
        }
        assert_eq!(rx.next().await, Some((49, 49)));
        tx.put(50);
        assert_eq!(rx.next().await, Some((50, 0)));
        assert_eq!(rx.try_take(), None);
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver_and_closes() {
        let (tx, mut rx) = slot();
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((v, _)) = rx.next().await {
                seen.push(v);
            }
            seen
        });
        tokio::task::yield_now().await;
        tx.put("a");
        tokio::task::yield_now().await;
        tx.put("b");
        drop(tx);
        let seen = reader.await.unwrap();
        // Whatever the interleaving, the last value is delivered and nothing after it.
        assert_eq!(seen.last(), Some(&"b"));
        assert!(seen.len() <= 2);
    }

    #[tokio::test]
    async fn last_value_survives_sender_drop() {
        let (tx, mut rx) = slot();
        tx.put(1);
        drop(tx);
        assert_eq!(rx.next().await, Some((1, 0)));
        assert_eq!(rx.next().await, None);
    }
}
