"""Services the flows and the CLI call: each step of the loop, with I/O, over the pure domain."""
