"""The imgjobs command line: a client of the HTTP API, and `imgjobs batch`."""
