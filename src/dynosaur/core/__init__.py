"""The bottom layer: records, ids, I/O, errors, params, fingerprints; imports no other layer."""
