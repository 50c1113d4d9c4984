"""Data planes: what applies a parameter to a bench. ``netlink`` is the real one (pyroute2);
``memory`` keeps links in a dict, a labelled simulation for tests and benchmarks."""
