"""What the web and the worker agree on: config, the op catalogue, job specs, storage paths."""
