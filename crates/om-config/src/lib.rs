//! oslo.config-style configuration for om: INI files, environment, transports from config.
