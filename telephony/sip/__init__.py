"""The SIP stack: a sans-IO core (messages, transactions, digest) and thin Twisted glue."""
