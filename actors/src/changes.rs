//! [`ChangesActor`]: drives the "stable" timers. Every second it asks the index to turn the
//! resources whose `StableAge` passed into StablePatient / StableStudy / StableSeries changes.
//! The timers are rows of the index (`stable_pending`), so they survive a restart.

use std::time::Duration;

use actix::prelude::*;

use crate::index::IndexWriter;

/// The stable-timer actor.
pub struct ChangesActor {
    index: IndexWriter,
    period: Duration,
    busy: bool,
}

impl ChangesActor {
    pub fn new(index: IndexWriter, period: Duration) -> Self {
        ChangesActor {
            index,
            period,
            busy: false,
        }
    }
}

/// Checks the stable timers now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckStable;

impl Actor for ChangesActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.period, |_, ctx| ctx.notify(CheckStable));
    }
}

impl Handler<CheckStable> for ChangesActor {
    type Result = ();

    fn handle(&mut self, _: CheckStable, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let index = self.index.clone();
        let fut = async move {
            let now = chrono::Utc::now();
            let (ms, iso) = (
                now.timestamp_millis(),
                now.format("%Y%m%dT%H%M%S").to_string(),
            );
            let r = index
                .write(move |c| crate::index::write::mark_stable(c, ms, &iso, 1000))
                .await;
            if let Err(e) = r {
                tracing::warn!("cannot update the stable resources: {e}");
            }
        };
        ctx.spawn(fut.into_actor(self).map(|_, actor, _| actor.busy = false));
    }
}
