"""Development tooling, not shipped: the embedded servers, the demo and the test plugin."""
