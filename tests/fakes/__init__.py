"""Local fakes of outside systems, served over real sockets for tests."""
