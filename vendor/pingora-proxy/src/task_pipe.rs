// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! The task pipe between the two halves of an HTTP/1 proxied request: tokio's bounded
//! channel carrying boxed [`HttpTask`]s.
//!
//! A tokio channel allocates its slots in blocks of 32, whatever its bound, and keeps its
//! first block for its whole life: 32 inline 40-byte tasks are a 1.5 KiB allocation per
//! channel, two channels per request, for as long as a response streams. Boxed, a slot is
//! a pointer (a 320-byte block), and each task costs one small allocation while it is in
//! the pipe (at most the bound's worth at a time).

use pingora_core::protocols::http::HttpTask;
use tokio::sync::mpsc::{self, error::SendError, error::TrySendError};

/// A bounded task pipe holding at most `capacity` tasks.
pub(crate) fn task_pipe(capacity: usize) -> (TaskSender, TaskReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (TaskSender(tx), TaskReceiver(rx))
}

/// The sending end ([`mpsc::Sender`] of boxed tasks).
pub(crate) struct TaskSender(mpsc::Sender<Box<HttpTask>>);

/// The receiving end ([`mpsc::Receiver`] of boxed tasks).
pub(crate) struct TaskReceiver(mpsc::Receiver<Box<HttpTask>>);

/// A reserved slot ([`mpsc::Permit`]).
pub(crate) struct TaskPermit<'a>(mpsc::Permit<'a, Box<HttpTask>>);

impl TaskSender {
    /// [`mpsc::Sender::send`]: waits for room; fails, handing the task back, when the
    /// receiver is gone.
    pub(crate) async fn send(&self, task: HttpTask) -> Result<(), SendError<HttpTask>> {
        self.0
            .send(Box::new(task))
            .await
            .map_err(|SendError(task)| SendError(*task))
    }

    /// [`mpsc::Sender::reserve`].
    pub(crate) async fn reserve(&self) -> Result<TaskPermit<'_>, SendError<()>> {
        self.0.reserve().await.map(TaskPermit)
    }

    /// [`mpsc::Sender::try_reserve`].
    pub(crate) fn try_reserve(&self) -> Result<TaskPermit<'_>, TrySendError<()>> {
        self.0.try_reserve().map(TaskPermit)
    }

    /// [`mpsc::Sender::is_closed`].
    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

impl TaskPermit<'_> {
    /// [`mpsc::Permit::send`].
    pub(crate) fn send(self, task: HttpTask) {
        self.0.send(Box::new(task));
    }
}

impl std::fmt::Debug for TaskPermit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl TaskReceiver {
    /// [`mpsc::Receiver::recv`].
    pub(crate) async fn recv(&mut self) -> Option<HttpTask> {
        self.0.recv().await.map(|task| *task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_go_through_in_order_and_a_closed_pipe_hands_them_back() {
        let (tx, mut rx) = task_pipe(2);
        tx.send(HttpTask::Done).await.unwrap();
        tx.try_reserve().unwrap().send(HttpTask::Body(None, true));
        assert!(tx.try_reserve().is_err(), "full at its bound");
        assert!(matches!(rx.recv().await, Some(HttpTask::Done)));
        assert!(matches!(rx.recv().await, Some(HttpTask::Body(None, true))));
        tx.reserve().await.unwrap().send(HttpTask::Done);
        assert!(matches!(rx.recv().await, Some(HttpTask::Done)));
        drop(rx);
        assert!(tx.is_closed());
        let SendError(back) = tx.send(HttpTask::Done).await.unwrap_err();
        assert!(matches!(back, HttpTask::Done));
    }
}
