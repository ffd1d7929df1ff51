"""Reports drawn for people: charts of the runs' figures, as SVG made on the server."""
