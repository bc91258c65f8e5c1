"""One module per upstream API. Only these modules talk to the network, through a shared client."""
