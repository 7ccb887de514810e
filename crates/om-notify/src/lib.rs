//! Notifiers and notification listeners for om with oslo.messaging's semantics.
