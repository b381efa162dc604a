"""Pure domain logic: contracts, lever registry and rules. No I/O lives here."""
