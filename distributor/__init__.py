"""distributor: embargoed press-release distribution with a delivery record for every target."""

__version__ = "0.1.0"
