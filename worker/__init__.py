"""The worker process: RQ workers that run image ops from the shared data directory."""
