//! RabbitMQ (AMQP 0-9-1) driver for om, on lapin, wire-compatible with Python oslo.messaging.
