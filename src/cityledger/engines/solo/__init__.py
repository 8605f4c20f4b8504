"""The solo engine: blocks produced in-process from the mempool, the embedded default (`cityledger up`)."""
