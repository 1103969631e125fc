//! Control connection slots: how many connections of the control socket,
//! which every local user can reach, are served at once, and whose. Root
//! may use every slot; other users share all but `root_reserve` of them,
//! each at most `max_connections_per_user` at once (by the uid the kernel
//! reports for the peer), so that one user holding connections keeps
//! neither other users nor root out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::ControlConfig;

/// Why a connection gets no slot; one line for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefusal {
    /// This user already holds as many connections as one user may.
    #[error("too many control connections from uid {uid} at once (limit {limit}); try again later")]
    UserLimit {
        /// The user.
        uid: u32,
        /// The limit per user.
        limit: usize,
    },
    /// Every slot the caller may use is taken.
    #[error("mosh-daemon is serving too many control connections ({limit}); try again later")]
    Full {
        /// The slots the caller may use.
        limit: usize,
    },
}

/// The connections being served, by uid.
#[derive(Debug, Default)]
pub struct Slots {
    held: HashMap<u32, usize>,
    all: usize,
    users: usize,
}

impl Slots {
    /// Takes a slot for `uid` under `limits`.
    pub fn take(&mut self, uid: u32, limits: &ControlConfig) -> Result<(), SlotRefusal> {
        if self.all >= limits.max_connections {
            return Err(SlotRefusal::Full {
                limit: limits.max_connections,
            });
        }
        if uid != 0 {
            let shared = limits.max_connections.saturating_sub(limits.root_reserve);
            if self.users >= shared {
                return Err(SlotRefusal::Full { limit: shared });
            }
            let held = self.held.get(&uid).copied().unwrap_or(0);
            if held >= limits.max_connections_per_user {
                return Err(SlotRefusal::UserLimit {
                    uid,
                    limit: limits.max_connections_per_user,
                });
            }
            self.users += 1;
        }
        *self.held.entry(uid).or_insert(0) += 1;
        self.all += 1;
        Ok(())
    }

    /// Gives back a slot `uid` took.
    fn release(&mut self, uid: u32) {
        if let Some(held) = self.held.get_mut(&uid) {
            *held -= 1;
            if *held == 0 {
                self.held.remove(&uid);
            }
            self.all -= 1;
            if uid != 0 {
                self.users -= 1;
            }
        }
    }
}

/// A slot taken for one connection, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Mutex<Slots>>,
    uid: u32,
}

impl Slot {
    /// Takes a slot for `uid` in `slots`.
    pub fn take(
        slots: &Arc<Mutex<Slots>>,
        uid: u32,
        limits: &ControlConfig,
    ) -> Result<Self, SlotRefusal> {
        slots.lock().expect("slots lock").take(uid, limits)?;
        Ok(Self {
            slots: slots.clone(),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().expect("slots lock").release(self.uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ControlConfig {
        ControlConfig {
            max_connections: 10,
            max_connections_per_user: 3,
            root_reserve: 4,
            request_timeout: 2,
        }
    }

    #[test]
    fn one_user_cannot_take_the_others_or_roots_slots() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let limits = limits();
        let alice: Vec<Slot> = (0..3)
            .map(|_| Slot::take(&slots, 1000, &limits).unwrap())
            .collect();
        assert_eq!(
            Slot::take(&slots, 1000, &limits).unwrap_err(),
            SlotRefusal::UserLimit {
                uid: 1000,
                limit: 3
            }
        );
        let others: Vec<Slot> = (1001..1004)
            .map(|uid| Slot::take(&slots, uid, &limits).unwrap())
            .collect();
        assert_eq!(
            Slot::take(&slots, 1004, &limits).unwrap_err(),
            SlotRefusal::Full { limit: 6 }
        );
        let root: Vec<Slot> = (0..4)
            .map(|_| Slot::take(&slots, 0, &limits).unwrap())
            .collect();
        assert_eq!(
            Slot::take(&slots, 0, &limits).unwrap_err(),
            SlotRefusal::Full { limit: 10 }
        );
        drop(root);
        drop(alice);
        Slot::take(&slots, 1000, &limits).unwrap();
        drop(others);
        let state = slots.lock().unwrap();
        assert_eq!((state.all, state.users), (0, 0));
        assert!(state.held.is_empty());
    }
}
