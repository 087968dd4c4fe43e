"""The benchmark harness: the artifacts of a run (`artifacts`), one worker process per artifact
and thread count (`jobs`, `worker`), the CPU grid (`grid`), the GPU routes and rows (`gpu`), and
the roofline (`roofline`)."""
