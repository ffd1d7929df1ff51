"""Provider settlement reports: what each provider paid, kept as fees and paid out."""
