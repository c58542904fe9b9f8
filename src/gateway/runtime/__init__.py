"""The process runtime: event loop, named tasks, heap settling, loop-lag sampling, workers."""
