//! AMQP 1.0 driver for om, on fe2o3-amqp.
