"""Bank statements: pure readers for camt.053, MT940, BAI2 and mapped CSV, one model."""
