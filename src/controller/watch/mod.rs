//! What the watches keep and what they make the controllers do, apart from the reconciles
//! themselves: which changes of a resource trigger a reconcile ([`triggers`]), what is dropped
//! from objects before they are kept ([`trim`]), the data of the Secrets resources reference
//! ([`secrets`]), which resources read a changed Secret or policy ([`relations`]), what each
//! watch event does besides filling its store ([`follow`]), the registrations a re-list no
//! longer has ([`sweep`]), and the `/readyz` gate held until every watch has listed
//! ([`readiness`]). [`super::run`] puts them together.

pub mod follow;
pub mod readiness;
pub mod relations;
pub mod secrets;
pub mod sweep;
pub mod triggers;
pub mod trim;
