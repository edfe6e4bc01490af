//! `Master`: the handle every client call gets: the master's settings, the request channel
//! to `ret_port` and the event bus reader, all shared by the requests of a process.

use std::sync::Arc;

use super::channel::RequestChannel;
use super::events::EventBus;
use crate::settings::Settings;

/// The master as the clients see it: configuration plus the two connections.
pub struct Master {
    /// The master configuration.
    pub settings: Arc<Settings>,
    /// Clear request channel to `ret_port`.
    pub channel: Arc<RequestChannel>,
    /// Event bus subscriber.
    pub bus: Arc<EventBus>,
}

impl Master {
    /// Handles for the master described by `settings`; nothing is connected yet.
    pub fn new(settings: Arc<Settings>) -> Master {
        Master {
            channel: RequestChannel::new(&settings),
            bus: EventBus::new(&settings),
            settings,
        }
    }
}
