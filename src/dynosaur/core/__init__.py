"""Records, params, fingerprints, errors and file conventions that every other layer shares."""
