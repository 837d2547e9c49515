//! End-to-end tests: real kubectl against a real minik8s server.
