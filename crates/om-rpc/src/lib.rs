//! RPC clients and servers for om with oslo.messaging's semantics.
