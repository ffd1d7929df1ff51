"""The currency mix the benches' generated payments are drawn from."""

# (code, weight, smallest and largest amount in minor units, step): JPY has no minor unit
# and KWD three decimals, of which Stripe requires the last to be 0.
CURRENCIES = (
    ("EUR", 35, 100, 500_000, 1),
    ("USD", 30, 100, 500_000, 1),
    ("GBP", 15, 100, 300_000, 1),
    ("CHF", 5, 100, 300_000, 1),
    ("JPY", 10, 100, 500_000, 1),
    ("KWD", 5, 1_000, 1_500_000, 10),
)
