"""Domain code shared by the API and the worker: settings, database, models and rules."""
