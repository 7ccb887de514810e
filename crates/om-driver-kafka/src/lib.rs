//! Kafka driver for om (notifications), on rdkafka, wire-compatible with Python oslo.messaging.
