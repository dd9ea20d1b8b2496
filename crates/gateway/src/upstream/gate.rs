//! The pool's permits (one per device connection), handed out in two classes when they run
//! short, so that a client waiting for its one answer is not queued behind another client's
//! pipeline.
//!
//! ```text
//!   borrow ── a permit free and nobody waits ──▶ taken at once (one short lock)
//!          └─ otherwise: wait in a queue ──┬─ Prompt:  the client waits for this answer
//!                                          └─ Backlog: the client has more requests queued
//!   release ─▶ the next Prompt waiter; every PROMPT_RUN-th grant goes to Backlog (no starving)
//! ```
//!
//! The idea is fq_codel's sparse-flow priority: a closed-loop HMI or historian (one request,
//! then its answer) goes before the backlog of a client that pipelined thousands, which a
//! plain first-come, first-served semaphore queued it behind (issue 9.4: 10 ms and more per
//! answer under 500 such clients, 25 ms p99). Within a class, first come, first served.
//!
//! A waiter is a oneshot channel: a grant sends into it. A waiter that gave up (timeout,
//! session gone) closes its end; a grant sent before it did is taken back and passed on, so
//! a permit is never lost.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// Prompt grants in a row before a waiting Backlog one gets its turn.
const PROMPT_RUN: u32 = 8;

/// Most permits Backlog borrows hold at once, whatever the pool's size: each is a session
/// running through its pipeline, and a few dozen of them busy on two cores put every other
/// session's wake-up behind theirs (the queue of the runtime, not of the pool).
const BACKLOG_HELD_MAX: usize = 16;

/// Which queue a waiting borrow joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The client waits for the answer to this request (nothing else of it is queued).
    Prompt,
    /// The client has more requests queued behind this one (it pipelines).
    Backlog,
}

/// The permits of one pool (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    free: usize,
    prompt: VecDeque<oneshot::Sender<()>>,
    backlog: VecDeque<oneshot::Sender<()>>,
    /// Prompt grants since the last Backlog one.
    prompt_run: u32,
    /// Permits held by Backlog borrows, and how many they may hold.
    backlog_held: usize,
    backlog_cap: usize,
}

impl Inner {
    fn may_hold_backlog(&self) -> bool {
        self.backlog_held < self.backlog_cap.max(1)
    }

    /// Grants one permit to the next waiter that may have it; false when there is none.
    fn grant_one(&mut self) -> bool {
        loop {
            let backlog_ok = !self.backlog.is_empty() && self.may_hold_backlog();
            let to_backlog =
                backlog_ok && (self.prompt.is_empty() || self.prompt_run >= PROMPT_RUN);
            let waiter = if to_backlog {
                self.backlog.pop_front()
            } else {
                self.prompt.pop_front()
            };
            let Some(waiter) = waiter else {
                return false;
            };
            // A waiter that gave up has closed its end: the grant goes on.
            if waiter.send(()).is_ok() {
                if to_backlog {
                    self.prompt_run = 0;
                    self.backlog_held += 1;
                } else {
                    self.prompt_run = self.prompt_run.saturating_add(1);
                }
                return true;
            }
        }
    }

    /// Hands free permits to the waiters that may have them.
    fn settle(&mut self) {
        while self.free > 0 && self.grant_one() {
            self.free -= 1;
        }
    }

    /// Takes a free permit for `class` without waiting, if no waiter of a class that goes
    /// first is queued (a newcomer never jumps the queue).
    fn take_now(&mut self, class: Class) -> bool {
        let ok = self.free > 0
            && self.prompt.is_empty()
            && match class {
                Class::Prompt => true,
                Class::Backlog => self.backlog.is_empty() && self.may_hold_backlog(),
            };
        if ok {
            self.free -= 1;
            if class == Class::Backlog {
                self.backlog_held += 1;
            }
        }
        ok
    }
}

/// One permit; dropping it gives it back (to the next waiter, or to the free ones).
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<Gate>,
    class: Class,
    live: bool,
}

impl Permit {
    /// Retires the permit: it is not given back (the pool's limit went down).
    pub(crate) fn forget(mut self) {
        self.live = false;
        self.gate.retire(self.class);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.live {
            self.gate.put_back(self.class);
        }
    }
}

/// A waiter's end: a grant that arrived after it gave up is passed on when it is dropped.
struct Ticket {
    gate: Arc<Gate>,
    class: Class,
    rx: oneshot::Receiver<()>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.gate.put_back(self.class);
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn permit(self: &Arc<Self>, class: Class) -> Permit {
        Permit {
            gate: Arc::clone(self),
            class,
            live: true,
        }
    }

    /// A permit now, if one is free for `class` and no waiter goes first.
    pub(crate) fn try_acquire(self: &Arc<Self>, class: Class) -> Option<Permit> {
        self.lock().take_now(class).then(|| self.permit(class))
    }

    /// A permit, waiting at most `limit` in the queue of `class`; `None` when none came.
    pub(crate) async fn acquire(self: &Arc<Self>, class: Class, limit: Duration) -> Option<Permit> {
        let mut ticket = {
            let mut g = self.lock();
            if g.take_now(class) {
                return Some(self.permit(class));
            }
            let (tx, rx) = oneshot::channel();
            match class {
                Class::Prompt => g.prompt.push_back(tx),
                Class::Backlog => g.backlog.push_back(tx),
            }
            Ticket {
                gate: Arc::clone(self),
                class,
                rx,
            }
        };
        match tokio::time::timeout(limit, &mut ticket.rx).await {
            Ok(Ok(())) => {
                // The grant is this permit now: the ticket must not give it back.
                ticket.rx.close();
                let permit = self.permit(class);
                drop(ticket);
                Some(permit)
            }
            // Timed out (a grant racing the timeout is passed on by the ticket's drop).
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// Adds `n` permits (the pool's limit went up): to waiters first, by class.
    pub(crate) fn release(&self, n: usize) {
        let mut g = self.lock();
        g.free += n;
        g.settle();
    }

    fn put_back(&self, class: Class) {
        let mut g = self.lock();
        if class == Class::Backlog {
            g.backlog_held = g.backlog_held.saturating_sub(1);
        }
        g.free += 1;
        g.settle();
    }

    fn retire(&self, class: Class) {
        let mut g = self.lock();
        if class == Class::Backlog {
            g.backlog_held = g.backlog_held.saturating_sub(1);
            // A Backlog waiter held back by the cap may go now.
            g.settle();
        }
    }

    /// Sets how many permits Backlog borrows may hold from a pool of `size`: half of it, at
    /// least one, at most [`BACKLOG_HELD_MAX`].
    pub(crate) fn size_for(&self, size: usize) {
        let mut g = self.lock();
        g.backlog_cap = (size / 2).clamp(1, BACKLOG_HELD_MAX);
        g.settle();
    }

    /// Takes up to `n` free permits out of use; returns how many it took.
    pub(crate) fn forget_free(&self, n: usize) -> usize {
        let mut g = self.lock();
        let taken = n.min(g.free);
        g.free -= taken;
        taken
    }

    /// Free permits.
    pub(crate) fn available(&self) -> usize {
        self.lock().free
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_prompt_waiter_is_served_before_the_backlog_queued_ahead_of_it() {
        let gate = Arc::new(Gate::default());
        gate.release(1);
        let held = gate.try_acquire(Class::Prompt).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, class) in [
            ("backlog-1", Class::Backlog),
            ("backlog-2", Class::Backlog),
            ("prompt", Class::Prompt),
        ] {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let p = gate.acquire(class, LONG).await.unwrap();
                order.lock().unwrap().push(name);
                drop(p);
            }));
            // Queue them in this order.
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["prompt", "backlog-1", "backlog-2"]);
        assert_eq!(gate.available(), 1, "every permit came back");
    }

    #[tokio::test]
    async fn the_backlog_gets_every_eighth_grant_while_prompt_waiters_keep_coming() {
        let gate = Arc::new(Gate::default());
        let backlog = gate.acquire(Class::Backlog, LONG);
        tokio::pin!(backlog);
        // Registered in the backlog queue (nothing free yet).
        assert!(futures_poll(backlog.as_mut()).is_none());
        let mut prompt_grants = 0;
        for _ in 0..PROMPT_RUN {
            let p = gate.acquire(Class::Prompt, Duration::from_millis(1));
            tokio::pin!(p);
            assert!(futures_poll(p.as_mut()).is_none());
            gate.release(1);
            let p = p.await.unwrap();
            prompt_grants += 1;
            p.forget();
        }
        // Now the backlog's turn, though a prompt waiter is queued too.
        let p = gate.acquire(Class::Prompt, Duration::from_millis(50));
        tokio::pin!(p);
        assert!(futures_poll(p.as_mut()).is_none());
        gate.release(1);
        let held = backlog.await;
        assert!(held.is_some(), "the backlog waiter got the grant");
        assert!(p.await.is_none(), "the prompt waiter had to wait");
        drop(held);
        assert_eq!(prompt_grants, PROMPT_RUN);
    }

    #[tokio::test]
    async fn a_grant_to_a_waiter_that_gave_up_is_passed_on() {
        let gate = Arc::new(Gate::default());
        // Times out in the queue.
        assert!(gate
            .acquire(Class::Prompt, Duration::from_millis(5))
            .await
            .is_none());
        let next = gate.acquire(Class::Prompt, LONG);
        tokio::pin!(next);
        assert!(futures_poll(next.as_mut()).is_none());
        gate.release(1);
        assert!(next.await.is_some(), "the stale waiter is skipped");
        assert_eq!(gate.available(), 1);
    }

    #[tokio::test]
    async fn a_grant_racing_a_cancelled_wait_is_not_lost() {
        let gate = Arc::new(Gate::default());
        {
            let waiting = gate.acquire(Class::Backlog, LONG);
            tokio::pin!(waiting);
            assert!(futures_poll(waiting.as_mut()).is_none());
            // Granted, but the waiter is dropped before it looks.
            gate.release(1);
        }
        assert_eq!(gate.available(), 1, "the ticket gave the grant back");
        assert!(gate.try_acquire(Class::Prompt).is_some());
    }

    #[tokio::test]
    async fn backlog_borrows_hold_at_most_half_the_pool_and_prompt_ones_take_the_rest() {
        let gate = Arc::new(Gate::default());
        gate.release(4);
        gate.size_for(4);
        let b1 = gate.try_acquire(Class::Backlog).unwrap();
        let _b2 = gate.try_acquire(Class::Backlog).unwrap();
        assert!(gate.try_acquire(Class::Backlog).is_none(), "cap: half of 4");
        // Waiting for the cap, not for a permit: a prompt borrow still takes a free one.
        let b3 = gate.acquire(Class::Backlog, LONG);
        tokio::pin!(b3);
        assert!(futures_poll(b3.as_mut()).is_none());
        let _p1 = gate.try_acquire(Class::Prompt).unwrap();
        assert_eq!(gate.available(), 1);
        // A backlog permit back: the waiting backlog borrow gets a permit (the free one).
        drop(b1);
        let b3 = b3.await;
        assert!(b3.is_some());
        assert_eq!(gate.available(), 1);
        drop(b3);
        assert_eq!(gate.available(), 2);
    }

    #[test]
    fn forget_free_takes_only_free_permits() {
        let gate = Arc::new(Gate::default());
        gate.release(3);
        let held = gate.try_acquire(Class::Prompt).unwrap();
        assert_eq!(gate.forget_free(5), 2);
        assert_eq!(gate.available(), 0);
        held.forget();
        assert_eq!(gate.available(), 0);
    }

    /// Polls a future once (None: pending).
    fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
