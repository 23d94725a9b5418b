"""The client listener (port 4304): the app IDEs, browsers and scripts talk to."""
