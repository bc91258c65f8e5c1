"""whydown's bot side: configuration, store, alerts, the chat front-ends and the command line."""
