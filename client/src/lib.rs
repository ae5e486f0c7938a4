//! What every ferry component (the scheduler, the controllers, the node agent) does through
//! the `kube` client beyond reading and writing its own objects: recording [`events`] as
//! client-go's recorder does, and [`leader`] election through a Lease.

pub mod events;
pub mod leader;
